"""Where frames come from: video files, images, cameras and network streams, as one iterator of ``Frame``.

Video is decoded with PyAV rather than ``cv2.VideoCapture`` because the output must keep each frame's
exact timestamp (variable frame rate stays variable), copy the audio track and honour rotation metadata,
none of which OpenCV exposes. Cameras go through OpenCV, which knows the platform's capture APIs.
"""

from __future__ import annotations

import functools
import glob
import os
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import MappingProxyType
from typing import Any

import av
import cv2
import numpy as np

from vidseg.errors import InputError, VidsegError
from vidseg.inputs.images import IMAGE_SUFFIXES, image_array, read_image
from vidseg.inputs.timestamps import display_times

# Suffixes taken as videos when a folder or glob is searched (an @list entry may be any file or URL).
VIDEO_INPUT_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts",
                        ".flv", ".wmv", ".3gp", ".ogv", ".vob", ".dv"}
LIVE_TIME_BASE = Fraction(1, 1000)  # live sources are stamped by the wall clock, in milliseconds
ROTATIONS = {90: cv2.ROTATE_90_COUNTERCLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_CLOCKWISE}


@dataclass
class Frame:
    """One input frame; ``image`` is None when it could not be read (``error`` says why)."""

    index: int
    image: np.ndarray | None
    pts: int | None = None  # in the source's time_base
    name: Path | None = None  # image inputs: path relative to the input root
    error: str | None = None
    resumed: bool = False  # --resume found its outputs complete; not read again
    packets: list[Any] = field(default_factory=list)  # audio packets to mux before this frame
    input: str | None = None  # collections: which input (relative name) the frame belongs to
    source: Source | None = None  # collections: the video it came from (time base, rate, audio)
    received: float = 0.0  # when the stream read it (perf_counter): latency is measured from here
    pending: Callable[[], np.ndarray] | None = field(default=None, repr=False)  # makes ``image``: see below

    def materialize(self) -> Frame:
        """Make ``image`` if it is still pending. A live intake drops most frames before anybody looks at
        them, so a network stream hands over decoded frames and converts to BGR only the ones taken."""
        if self.pending is not None:
            self.image, self.pending = self.pending(), None
        return self


class Source:
    """Common surface of every input kind."""

    kind = "video"
    live = False
    rgb = False  # frames are handed back in RGB order (arrays given with rgb=True)
    frame_count: int | None = None
    input_count: int | None = None  # collections: how many files
    fps: Fraction | None = None
    time_base: Fraction = LIVE_TIME_BASE
    audio: Any = None  # PyAV audio stream to copy, if any
    rotation = 0  # degrees the frames are turned to be displayed upright (video metadata)
    decode_errors = 0  # frames or packets that failed to decode and were skipped
    decode_errors_by_input: Mapping[str, int] = MappingProxyType({})  # collections: the same, per file
    gaps = 0  # live sources: times the source dropped and was reopened
    trailing_packets: Sequence[Any] = ()  # video: audio packets after the last frame
    skip: Callable[[Path], bool] | None = None  # image inputs: names whose outputs are already complete

    def frames(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the device or file."""

    def _upright(self, frame: av.VideoFrame) -> np.ndarray:
        """A decoded frame as BGR in its displayed orientation (rotation is counter-clockwise)."""
        self.rotation = int(round(frame.rotation)) % 360
        image = frame.to_ndarray(format="bgr24")
        code = ROTATIONS.get(self.rotation)
        return cv2.rotate(image, code) if code is not None else image


def open_source(spec: str, recursive: bool = False, start: float | None = None, end: float | None = None,
                reconnect_attempts: int = 5, exclude: Sequence[Path] = ()) -> Source:
    """Pick the source kind from what the user typed: a folder, glob or ``@list`` holding videos becomes a
    collection; one of images only stays an image batch. Files under ``exclude`` (the run's own output
    folders) are not inputs, so outputs written inside the input folder are not read back next time."""
    if spec.isdigit():
        return CameraSource(int(spec), reconnect_attempts)
    if "://" in spec:
        return NetworkSource(spec, reconnect_attempts)
    if spec.startswith("@"):
        return _listed(Path(spec[1:]), recursive, start, end)
    path = Path(spec)
    if path.is_dir():
        files = _outside(_media_in(path, recursive), exclude)
        if not files:
            raise InputError(f"no images or videos in folder {path}")
        return _files(files, path, start, end)
    if not path.exists() and any(c in spec for c in "*?["):
        files = _outside(sorted(Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file()), exclude)
        if not files:
            raise InputError(f"no files match {spec}")
        return _files(files, _glob_root(spec), start, end)
    if not path.exists():
        raise InputError(f"input not found: {spec}")
    if not path.is_file():
        raise InputError(f"input is not a file, folder or camera: {spec}")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        image = read_image(path)  # a lone image that cannot be read is a usage error, not a skipped item
        return ImageSource([path], path.parent, preloaded=image)
    return VideoSource(path, start, end)


def live_source(spec: str, on_change: Callable[[str, str | None], None] | None = None) -> Source:
    """A camera index or stream URL that a long-running service keeps open: nothing is opened here (a
    camera that is down now may be up in a minute), and a lost source is reopened for as long as it runs."""
    if spec.isdigit():
        return CameraSource(int(spec), None, on_change, connect_now=False)
    if "://" in spec:
        return NetworkSource(spec, None, on_change, connect_now=False)
    raise InputError(f"{spec!r} is not a live source: give a stream URL (rtsp://, http://, udp://...) or a "
                     "camera index")


def _media_in(folder: Path, recursive: bool) -> list[Path]:
    """Images and videos under a folder, sorted; hidden files (such as partial outputs) left out."""
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in folder.glob(pattern) if p.is_file() and not p.name.startswith(".")
                  and p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_INPUT_SUFFIXES)


def _outside(files: list[Path], folders: Sequence[Path]) -> list[Path]:
    resolved = [f.resolve() for f in folders]
    return [p for p in files if not any(p.resolve().is_relative_to(f) for f in resolved)]


def _files(files: list[Path], root: Path, start: float | None, end: float | None) -> Source:
    if all(p.suffix.lower() in IMAGE_SUFFIXES for p in files):
        return ImageSource(files, root)
    return CollectionSource([Entry(str(p), relative_name(p, root)) for p in files], start, end)


def relative_name(path: Path, root: Path) -> Path:
    return path.relative_to(root) if path.is_relative_to(root) else Path(path.name)


def _listed(list_file: Path, recursive: bool, start: float | None, end: float | None) -> Source:
    """``@list.txt``: one path or URL a line (blank lines and ``#`` comments skipped); relative paths are
    relative to the list's folder; a folder stands for its media. Output names are relative to the
    entries' common folder. A listed file that is missing is reported and skipped like a broken one."""
    try:
        lines = list_file.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read the input list {list_file}: {getattr(e, 'strerror', None) or e}") from None
    specs = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
    if not specs:
        raise InputError(f"the input list {list_file} names no inputs")
    paths: list[Path] = []
    urls: list[str] = []
    for spec in specs:
        if "://" in spec:
            urls.append(spec)
            continue
        path = Path(spec) if Path(spec).is_absolute() else list_file.parent / spec
        paths.extend(_media_in(path, recursive) if path.is_dir() else [path])
    root = Path(os.path.commonpath([p.parent.absolute() for p in paths])) if paths else Path(".")
    if not urls and all(p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() for p in paths):
        return ImageSource([p.absolute() for p in paths], root)
    entries = [Entry(str(p), relative_name(p.absolute(), root)) for p in paths]
    entries += [Entry(url, Path(_url_name(url))) for url in urls]
    return CollectionSource(entries, start, end)


def _url_name(url: str) -> str:
    """A file-system-safe relative name for a stream's outputs, from its host and path."""
    parsed = urllib.parse.urlsplit(url)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{parsed.netloc}{parsed.path}").strip("_") or "stream"


def _glob_root(pattern: str) -> Path:
    """The directory part of a glob before its first wildcard: names are relative to it."""
    parts = Path(pattern).parts
    first_wild = next(i for i, p in enumerate(parts) if any(c in p for c in "*?["))
    return Path(*parts[:first_wild]) if first_wild else Path(".")


class VideoSource(Source):
    """A video file. ``first_pts``/``end_pts`` keep only the frames with ``first_pts <= pts < end_pts``,
    reading from the keyframe at ``first_pts``: one segment of a video split for a cluster."""

    kind = "video"

    def __init__(self, path: Path, start: float | None = None, end: float | None = None, *,
                 first_pts: int | None = None, end_pts: int | None = None):
        self.path, self.start, self.end = path, start, end
        self.first_pts, self.end_pts = first_pts, end_pts
        try:
            self.container = av.open(str(path), metadata_errors="ignore")
        except av.error.FFmpegError as e:
            raise InputError(f"{path}: not a readable video ({e.strerror or type(e).__name__})") from None
        if not self.container.streams.video:
            self.container.close()
            raise InputError(f"{path}: no video stream")
        self.stream = self.container.streams.video[0]
        if self.stream.codec_context is None or not self.stream.codec_context.codec.is_decoder:
            raise InputError(f"{path}: no decoder for its video codec")
        # One decoding thread: the model keeps every core busy, so FFmpeg's extra threads would only contend.
        self.stream.codec_context.thread_count = 1
        self.audio = self.container.streams.audio[0] if self.container.streams.audio else None
        self.time_base = self.stream.time_base or Fraction(1, 90000)
        self.fps = self.stream.average_rate or self.stream.guessed_rate
        self.frame_count = self.stream.frames or self._estimated_frames()
        self._audio: list[Any] = []  # audio packets demuxed since the last frame handed out

    def _estimated_frames(self) -> int | None:
        if self.stream.duration and self.fps:
            return int(self.stream.duration * self.time_base * self.fps + 0.5)
        return None

    def frames(self) -> Iterator[Frame]:
        if self.first_pts is not None:
            self.container.seek(self.first_pts, stream=self.stream)
        elif self.start:
            self.container.seek(int(self.start / self.time_base), stream=self.stream)
        self._audio = []
        step = round(1 / (self.fps * self.time_base)) if self.fps else None
        index = 0
        for f, pts in display_times(self._decoded(), step):
            if pts is not None and self.start and pts * self.time_base < self.start:
                continue
            if pts is not None and self.first_pts is not None and pts < self.first_pts:
                continue  # an open GOP's leading frames: the previous segment's
            if pts is not None and self.end_pts is not None and pts >= self.end_pts:
                return
            if pts is not None and self.end is not None and pts * self.time_base > self.end:
                self.trailing_packets = self._take_audio()
                return
            image = self._upright(f)
            yield Frame(index, image, pts, packets=self._take_audio())
            index += 1
        self.trailing_packets = self._take_audio()

    def _decoded(self) -> Iterator[av.VideoFrame]:
        """The video's frames in display order; the audio packets met meanwhile collect in ``self._audio``."""
        streams = [self.stream] + ([self.audio] if self.audio is not None else [])
        packets = self.container.demux(*streams)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.error.FFmpegError:  # a damaged container: keep what was read so far
                self.decode_errors += 1
                return
            if packet.stream is self.audio:
                if packet.dts is not None and self._wanted(packet.pts, packet.time_base):
                    self._audio.append(packet)
                continue
            try:
                yield from packet.decode()
            except av.error.FFmpegError:
                self.decode_errors += 1

    def _take_audio(self) -> list[Any]:
        audio, self._audio = self._audio, []
        return audio

    def _wanted(self, pts: int | None, time_base: Fraction) -> bool:
        if pts is None:
            return True
        t = pts * time_base
        return (not self.start or t >= self.start) and (self.end is None or t <= self.end)

    def close(self) -> None:
        self.container.close()


class ImageSource(Source):
    kind = "images"

    def __init__(self, files: list[Path], root: Path, preloaded: np.ndarray | None = None):
        self.files, self.root = files, root
        self.frame_count = len(files)
        self._preloaded = preloaded

    def frames(self) -> Iterator[Frame]:
        for i, path in enumerate(self.files):
            name = relative_name(path, self.root)
            if self.skip is not None and self.skip(name):
                yield Frame(i, None, name=name, resumed=True)
                continue
            image, self._preloaded = self._preloaded, None
            try:
                yield Frame(i, image if image is not None else read_image(path), name=name)
            except VidsegError as e:
                yield Frame(i, None, name=name, error=str(e))


class ArraySource(Source):
    """Images already in memory (a list, or a generator such as a robot's camera loop), in order.

    A bad array is the caller's programming error, not a damaged file, so it raises rather than being
    skipped like an unreadable image in a folder."""

    kind = "arrays"

    def __init__(self, images: Iterable[np.ndarray], rgb: bool = False):
        self.images, self.rgb = images, rgb
        self.frame_count = len(images) if isinstance(images, Sequence) else None

    def frames(self) -> Iterator[Frame]:
        for i, image in enumerate(self.images):
            yield Frame(i, image_array(image, self.rgb))


@dataclass(frozen=True)
class Entry:
    """One input of a collection: what to open (a path or URL) and its name relative to the collection."""

    spec: str
    name: Path

    @property
    def is_image(self) -> bool:
        return "://" not in self.spec and Path(self.spec).suffix.lower() in IMAGE_SUFFIXES


class CollectionSource(Source):
    """Many videos (and images) read one after another as one run.

    One run means the model is compiled once and its queue stays full across file boundaries: the next
    file is opened and decoded while the last windows of the previous one are inferred. Frames carry their
    input's name and, for videos, the video's own source (time base, frame rate, audio) so each is written
    to its own outputs. A file that cannot be opened is reported as a failed frame and skipped."""

    kind = "collection"

    def __init__(self, entries: list[Entry], start: float | None = None, end: float | None = None):
        self.entries, self.start, self.end = entries, start, end
        self.input_count = len(entries)
        self.decode_errors_by_input: dict[str, int] = {}
        self._current: Source | None = None
        self.frame_count = self._count_frames()

    def _count_frames(self) -> int | None:
        """Frames in the whole collection, for the progress bar; None when a stream's length is unknown."""
        total = 0
        for e in self.entries:
            if e.is_image:
                total += 1
                continue
            if "://" in e.spec:
                return None
            try:
                video = VideoSource(Path(e.spec), self.start, self.end)
            except VidsegError:
                continue  # reported when its turn comes
            total += video.frame_count or 0
            video.close()
        return total

    def frames(self) -> Iterator[Frame]:
        for e in self.entries:
            name = str(e.name)
            if self.skip is not None and self.skip(e.name):
                yield Frame(0, None, name=e.name, resumed=True, input=name)
            elif e.is_image:
                try:
                    yield Frame(0, read_image(Path(e.spec)), name=e.name, input=name)
                except VidsegError as err:
                    yield Frame(0, None, name=e.name, error=str(err), input=name)
            else:
                yield from self._video_frames(e)

    def _video_frames(self, e: Entry) -> Iterator[Frame]:
        name = str(e.name)
        try:
            video = NetworkSource(e.spec, 0) if "://" in e.spec else VideoSource(Path(e.spec), self.start, self.end)
        except VidsegError as err:
            yield Frame(0, None, name=e.name, error=str(err), input=name)
            return
        # Not closed here: frames still in flight refer to it (its audio stream is the writer's template);
        # PyAV closes it when the last of them is gone.
        self._current = video
        for frame in video.frames():
            frame.input, frame.source = name, video
            yield frame
        self.decode_errors += video.decode_errors
        self.decode_errors_by_input[name] = video.decode_errors
        self._current = None

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None


class _LiveSource(Source):
    """Reconnects with exponential backoff when the source drops; stamps frames by the wall clock.

    ``reconnect_attempts``: failed opens in a row before giving up (None: for as long as the run goes on).
    ``state`` says where the source is (connecting, live, reconnecting, unreachable, ended) and ``error``
    why, and ``on_change(state, reason)`` hears each change once."""

    live = True

    def __init__(self, reconnect_attempts: int | None,
                 on_change: Callable[[str, str | None], None] | None = None):
        self.reconnect_attempts = reconnect_attempts
        self.state, self.error = "connecting", None
        self._on_change = on_change
        self._interrupted = threading.Event()
        self._t0: float | None = None

    def _stamp(self) -> int:
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        return int((now - self._t0) * 1000)

    def _open(self) -> None:
        raise NotImplementedError

    def _read(self) -> Iterator[np.ndarray | Callable[[], np.ndarray]]:
        """Frames as BGR images, or as calls that make them (see ``Frame.materialize``)."""
        raise NotImplementedError

    def _open_now(self) -> None:
        """Open at once, so a wrong address or device is a one-line error before anything else runs."""
        try:
            self._open()
        except (av.error.FFmpegError, OSError, VidsegError) as e:
            self.close()
            raise InputError(f"cannot read from {self.describe()}: {e}") from None

    def _is_open(self) -> bool:
        raise NotImplementedError

    def _set(self, state: str, reason: str | None = None) -> None:
        if state != self.state:
            self.state, self.error = state, reason
            if self._on_change is not None:
                self._on_change(state, reason)

    def interrupt(self) -> None:
        """Stop waiting: a backoff ends at once and no reconnection follows (the run is stopping)."""
        self._interrupted.set()

    def frames(self) -> Iterator[Frame]:
        index, failures = 0, 0
        while not self._interrupted.is_set():
            try:
                if not self._is_open():
                    self._open()
                for image in self._read():
                    failures = 0
                    self._set("live")
                    if callable(image):
                        yield Frame(index, None, self._stamp(), pending=image)
                    else:
                        yield Frame(index, image, self._stamp())
                    index += 1
                reason = "the stream ended"
            except (av.error.FFmpegError, OSError, VidsegError) as e:
                reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            self.close()
            failures += 1
            self.gaps += self.state == "live"  # a reconnection, counted once however many tries it takes
            if self._interrupted.is_set() or (self.reconnect_attempts is not None
                                              and failures > self.reconnect_attempts):
                self._set("ended", reason)
                return
            self._set("reconnecting" if index else "unreachable", reason)
            self._interrupted.wait(min(0.5 * 2 ** (failures - 1), 10.0))

    def describe(self) -> str:
        raise NotImplementedError


class NetworkSource(_LiveSource):
    kind = "stream"

    def __init__(self, url: str, reconnect_attempts: int | None = 5,
                 on_change: Callable[[str, str | None], None] | None = None, connect_now: bool = True):
        super().__init__(reconnect_attempts, on_change)
        self.url = url
        self.container = None
        self.keyframes_only = False  # decode keyframes only: set by the stream reading it (runs/intake.py)
        self.keyframes = 0  # keyframes seen so far
        self.skipped = 0  # frames that arrived and were left undecoded under keyframes_only
        if connect_now:
            self._open_now()

    def describe(self) -> str:
        return self.url

    def _is_open(self) -> bool:
        return self.container is not None

    def _open(self) -> None:
        self.close()
        options = {"rtsp_transport": "tcp"} if self.url.startswith("rtsp") else {}
        self.container = av.open(self.url, options=options, timeout=(10.0, 10.0))
        if not self.container.streams.video:
            raise InputError(f"{self.url}: no video stream")
        self.fps = self.container.streams.video[0].average_rate

    def _read(self) -> Iterator[Callable[[], np.ndarray]]:
        stream = self.container.streams.video[0]
        decode_all = True  # back to every frame only from a keyframe: the frames between refer to it
        for packet in self.container.demux(stream):
            if packet.is_keyframe:
                self.keyframes += 1
                decode_all = not self.keyframes_only
            elif self.keyframes_only or not decode_all:
                self.skipped += packet.size > 0
                continue
            for f in packet.decode():
                yield functools.partial(self._upright, f)

    def close(self) -> None:
        if self.container is not None:
            self.container.close()
            self.container = None


class CameraSource(_LiveSource):
    kind = "camera"

    def __init__(self, index: int, reconnect_attempts: int | None = 5,
                 on_change: Callable[[str, str | None], None] | None = None, connect_now: bool = True):
        super().__init__(reconnect_attempts, on_change)
        self.index = index
        self.capture: cv2.VideoCapture | None = None
        if connect_now:
            self._open_now()

    def describe(self) -> str:
        return f"camera {self.index}"

    def _is_open(self) -> bool:
        return self.capture is not None

    def _open(self) -> None:
        self.close()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # our one-line errors say it all
        self.capture = cv2.VideoCapture(self.index)
        if not self.capture.isOpened():
            raise InputError(f"camera {self.index} cannot be opened")
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        self.fps = Fraction(fps).limit_denominator(1001) if fps > 0 else None

    def _read(self) -> Iterator[np.ndarray]:
        while True:
            ok, image = self.capture.read()
            if not ok:
                return
            yield image

    def close(self) -> None:
        if self.capture is not None:
            self.capture.release()
            self.capture = None
