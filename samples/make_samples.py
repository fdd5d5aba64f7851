"""Make the sample and benchmark media, deterministically and offline.

Source pictures are the real photographs in Debian's ``opencv-doc`` package. If they are not installed,
the package is fetched from the Debian archive with ``apt-get download`` and unpacked locally with
``dpkg -x`` (no root needed to unpack, nothing installed system-wide).

    python samples/make_samples.py [OUT_DIR]      (default samples/media)

Writes:
    pan_1080p.mp4   1920x1080, 30000/1001 fps, 6 s, H.264 + AAC: a slow zooming pan over a photograph
    pan_720p.mp4    1280x720, 30 fps, 4 s, H.264 + AAC
    images/         photographs of mixed sizes and formats (JPEG, PNG, grayscale, RGBA, one in a subfolder)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
SYSTEM_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
DATA_SUBDIR = Path("usr/share/doc/opencv-doc/examples/data")


def opencv_data(cache: Path = HERE / "media") -> Path:
    """The opencv-doc example data directory, unpacking the Debian package into ``cache`` if needed."""
    if (SYSTEM_DATA / "aloeL.jpg").exists():
        return SYSTEM_DATA
    unpacked = cache / "opencv-doc"
    if (unpacked / DATA_SUBDIR / "aloeL.jpg").exists():
        return unpacked / DATA_SUBDIR
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        try:
            subprocess.run(["apt-get", "download", "opencv-doc"], cwd=tmp, check=True, capture_output=True)
        except (OSError, subprocess.CalledProcessError) as e:
            detail = getattr(e, "stderr", b"") or b""
            sys.exit(f"cannot get Debian's opencv-doc (apt-get download opencv-doc): {detail.decode().strip() or e}")
        deb = next(Path(tmp).glob("opencv-doc_*.deb"))
        subprocess.run(["dpkg", "-x", str(deb), str(unpacked)], check=True)
    return unpacked / DATA_SUBDIR


def pan_frames(photo: np.ndarray, size: tuple[int, int], count: int):
    """A slow diagonal pan with a gentle zoom: real texture in motion, so codecs do real work."""
    w, h = size
    scale = 2.0 * max(w / photo.shape[1], h / photo.shape[0])
    big = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    bh, bw = big.shape[:2]
    for i in range(count):
        p = i / max(count - 1, 1)
        zoom = 1.0 + 0.25 * np.sin(np.pi * p)
        cw, ch = int(w * zoom), int(h * zoom)
        x = int((bw - cw) * p)
        y = int((bh - ch) * (0.5 + 0.4 * np.sin(2 * np.pi * p)))
        yield cv2.resize(big[y:y + ch, x:x + cw], (w, h), interpolation=cv2.INTER_AREA)


def write_clip(path: Path, photo: np.ndarray, size: tuple[int, int], fps: Fraction, seconds: float) -> None:
    frames = int(seconds * fps)
    tmp = path.with_suffix(".tmp.mp4")
    with av.open(str(tmp), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        video.options = {"crf": "18", "preset": "medium", "threads": "1"}
        audio = out.add_stream("aac", rate=48000)
        audio.layout = "stereo"
        for frame in pan_frames(photo, size, frames):
            for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        rng = np.random.default_rng(0)
        t = np.arange(int(48000 * seconds)) / 48000
        tone = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.02 * rng.standard_normal(t.size)
        pcm = np.stack([tone, tone]).astype(np.float32)
        for start in range(0, pcm.shape[1], 1024):
            chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm[:, start:start + 1024]), format="fltp",
                                               layout="stereo")
            chunk.sample_rate = 48000
            chunk.pts = start
            for packet in audio.encode(chunk):
                out.mux(packet)
        for packet in audio.encode(None):
            out.mux(packet)
    tmp.replace(path)


def write_images(folder: Path, data: Path) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "more").mkdir(parents=True)
    shutil.copy(data / "building.jpg", folder / "building.jpg")  # 868x600
    shutil.copy(data / "starry_night.jpg", folder / "starry_night.jpg")  # 752x600
    shutil.copy(data / "fruits.jpg", folder / "more" / "fruits.jpg")
    cv2.imwrite(str(folder / "aloe_portrait.png"), cv2.rotate(cv2.imread(str(data / "aloeL.jpg")),
                                                              cv2.ROTATE_90_CLOCKWISE))  # 1110x1282
    cv2.imwrite(str(folder / "left01_gray.png"), cv2.imread(str(data / "left01.jpg"), cv2.IMREAD_GRAYSCALE))
    cv2.imwrite(str(folder / "small.jpg"), cv2.resize(cv2.imread(str(data / "baboon.jpg")), (120, 90)))
    shutil.copy(data / "opencv-logo.png", folder / "logo_rgba.png")  # RGBA
    panorama = cv2.imread(str(data / "leuvenA.jpg"))
    cv2.imwrite(str(folder / "panorama.jpg"), panorama[200:350])  # 751x150


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "media"
    out.mkdir(parents=True, exist_ok=True)
    data = opencv_data()
    photo = cv2.imread(str(data / "aloeL.jpg"))
    write_clip(out / "pan_1080p.mp4", photo, (1920, 1080), Fraction(30000, 1001), 6.0)
    write_clip(out / "pan_720p.mp4", photo, (1280, 720), Fraction(30), 4.0)
    write_images(out / "images", data)
    print(f"samples in {out}/: pan_1080p.mp4, pan_720p.mp4, images/")


if __name__ == "__main__":
    main()
