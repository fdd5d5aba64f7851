"""The Python API on real media: identical to the command line, ordered, closable, validated, shareable."""

from __future__ import annotations

import doctest
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import ROOT, ffmpeg, probe_frames, run_vidseg
from oracle import NAMES, paint
from PIL import Image

import vidseg
from vidseg import FrameResult, Result, Segmenter, Writer


@pytest.fixture(scope="module")
def seg(tiny_model: Path):
    with Segmenter(tiny_model, device="CPU") as s:
        yield s


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory, media: Path) -> Path:
    """A real photograph as PNG: lossless, so OpenCV and the CLI's Pillow decode the same pixels."""
    path = tmp_path_factory.mktemp("photo") / "building.png"
    cv2.imwrite(str(path), cv2.imread(str(media / "building.jpg")))
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, media: Path) -> Path:
    """The first 9 frames of Megamind.avi (MPEG-4 Part 2 in AVI, 2997/125 fps, AC3 audio), stream-copied."""
    path = tmp_path_factory.mktemp("clip") / "megamind.avi"
    ffmpeg("-i", media / "Megamind.avi", "-t", "0.35", "-c", "copy", path)
    return path


def threads_now() -> set[threading.Thread]:
    return set(threading.enumerate())


def test_image_call_writes_the_same_label_png_as_the_cli(tmp_path: Path, seg: Segmenter, photo: Path,
                                                         tiny_model: Path) -> None:
    cli = run_vidseg("process", photo, "--model", tiny_model, "--device", "CPU", "--labels", tmp_path / "cli",
                     "--quiet")
    assert cli.returncode == 0, cli.stderr
    image = cv2.imread(str(photo))
    result = seg(image)
    assert result.labels.shape == image.shape[:2] and result.labels.dtype == np.uint8
    result.save(tmp_path / "api.png")
    assert (tmp_path / "api.png").read_bytes() == (tmp_path / "cli" / "building.png").read_bytes()


def test_rgb_gray_and_alpha_arrays_are_read_as_the_cli_reads_files(tmp_path: Path, seg: Segmenter, photo: Path,
                                                                   tiny_model: Path) -> None:
    bgr = cv2.imread(str(photo))
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    alpha = np.tile(np.linspace(0, 255, bgr.shape[1]).astype(np.uint8), (bgr.shape[0], 1))
    bgra = np.dstack([bgr, alpha])
    cv2.imwrite(str(tmp_path / "gray.png"), gray)
    cv2.imwrite(str(tmp_path / "rgba.png"), bgra)
    cli = run_vidseg("process", tmp_path / "gray.png", "--model", tiny_model, "--labels", tmp_path / "g", "--quiet")
    assert cli.returncode == 0, cli.stderr
    cli = run_vidseg("process", tmp_path / "rgba.png", "--model", tiny_model, "--labels", tmp_path / "a", "--quiet")
    assert cli.returncode == 0, cli.stderr
    cli_gray = np.asarray(Image.open(tmp_path / "g" / "gray.png"))
    cli_alpha = np.asarray(Image.open(tmp_path / "a" / "rgba.png"))
    assert (seg(gray).labels == cli_gray).all()
    assert (seg(gray[:, :, None]).labels == cli_gray).all()
    assert (seg(bgra).labels == cli_alpha).all()
    assert (seg(bgra[:, :, [2, 1, 0, 3]], rgb=True).labels == cli_alpha).all()

    plain, rgb = seg(bgr), seg(bgr[:, :, ::-1], rgb=True)
    assert (plain.labels == rgb.labels).all()
    assert (rgb.colorize() == plain.colorize()[:, :, ::-1]).all()  # answers in the caller's channel order
    assert (rgb.overlay(bgr[:, :, ::-1], 0.4) == plain.overlay(bgr, 0.4)[:, :, ::-1]).all()


def test_result_names_measures_and_draws_the_labels(seg: Segmenter, photo: Path) -> None:
    image = cv2.imread(str(photo))
    result = seg(image)
    fractions = result.fractions()
    assert list(fractions.values()) == sorted(fractions.values(), reverse=True)
    assert abs(sum(fractions.values()) - 1) < 1e-4
    top = next(iter(fractions))
    assert top in seg.class_names and result.class_names == seg.class_names
    mask = result.mask(top)
    assert mask.dtype == bool and mask.shape == image.shape[:2]
    assert abs(mask.mean() - fractions[top]) < 1e-6
    assert (result.mask(seg.class_names.index(top)) == mask).all()
    with pytest.raises(vidseg.VidsegError, match="no class 'unicorn'"):
        result.mask("unicorn")
    person = seg.class_names.index("person, individual, someone, somebody, mortal, soul")
    assert result.class_id("person") == result.class_id("Somebody") == person  # any one synonym
    with pytest.raises(vidseg.VidsegError, match="'screen' names several classes"):
        result.mask("screen")
    colored = result.colorize()
    assert tuple(colored[mask][0][::-1]) == result.colors[seg.class_names.index(top)]
    assert (result.overlay(image, alpha=0.0) == image).all()
    assert (result.overlay(image, alpha=1.0) == colored).all()
    with pytest.raises(vidseg.VidsegError, match="overlay needs"):
        result.overlay(image[:10])


def test_stream_and_writer_make_what_the_cli_makes(tmp_path: Path, seg: Segmenter, clip: Path,
                                                    tiny_model: Path) -> None:
    cli = run_vidseg("process", clip, "--model", tiny_model, "--device", "CPU", "-o", tmp_path / "cli.mp4",
                     "--labels", tmp_path / "cli_labels", "--stats", tmp_path / "cli.jsonl", "--quiet")
    assert cli.returncode == 0, cli.stderr
    with seg.stream(clip, overlay_alpha=0.5) as frames, Writer(
            video=tmp_path / "api.mp4", labels=tmp_path / "api_labels", stats=tmp_path / "api.jsonl") as out:
        seen = []
        for frame in frames:
            assert isinstance(frame, FrameResult)
            seen.append((frame.index, frame.time))
            out.write(frame)
    in_times, _ = probe_frames(clip)
    assert len(in_times) == 9
    assert [i for i, _ in seen] == list(range(9))
    np.testing.assert_allclose([t for _, t in seen], sorted(in_times), atol=1e-6)  # display order (packed B-frames)
    assert frames.summary.frames_out == 9 and frames.summary.skipped == 0
    cli_pngs = sorted((tmp_path / "cli_labels").iterdir())
    assert [p.name for p in cli_pngs] == [p.name for p in sorted((tmp_path / "api_labels").iterdir())]
    for p in cli_pngs:
        assert p.read_bytes() == (tmp_path / "api_labels" / p.name).read_bytes(), p.name
    assert (tmp_path / "cli.jsonl").read_text() == (tmp_path / "api.jsonl").read_text()
    cli_times, cli_info = probe_frames(tmp_path / "cli.mp4")
    api_times, api_info = probe_frames(tmp_path / "api.mp4")
    assert api_times == cli_times and api_info == cli_info and api_info["audio"] == ["ac3"]
    assert decoded(tmp_path / "cli.mp4") == decoded(tmp_path / "api.mp4")


def decoded(path: Path) -> list[bytes]:
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="yuv420p").tobytes() for f in c.decode(c.streams.video[0])]


def test_frames_come_back_in_input_order(oracle_model: Path) -> None:
    # Each frame painted in one colour of the oracle's palette: frame i must come back as class i % 8.
    images = [paint(np.full((300 + 40 * (i % 3), 700, ), i % 8, np.uint8)) for i in range(24)]
    with Segmenter(oracle_model, device="CPU") as oracle:
        results = oracle.segment_batch(images)
        streamed = [(f.index, int(np.bincount(f.labels.ravel()).argmax())) for f in oracle.stream(iter(images))]
    assert [int(np.bincount(r.labels.ravel()).argmax()) for r in results] == [i % 8 for i in range(24)]
    assert streamed == [(i, i % 8) for i in range(24)]
    assert results[3].fractions() == {NAMES[3]: 1.0}


def test_folder_stream_skips_an_unreadable_image_and_lists_it(tmp_path: Path, seg: Segmenter, photo: Path) -> None:
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    image = cv2.imread(str(photo))
    cv2.imwrite(str(folder / "a.png"), image)
    cv2.imwrite(str(folder / "sub" / "c.png"), image[:, ::-1])
    (folder / "b.jpg").write_bytes(b"not a jpeg at all")
    with seg.stream(folder, recursive=True) as frames:
        names = [(str(f.name), f.time) for f in frames]
    assert names == [("a.png", None), ("sub/c.png", None)]
    assert [f["input"] for f in frames.summary.failures] == ["b.jpg"]


def test_break_closes_the_stream_and_leaves_no_thread(seg: Segmenter, clip: Path) -> None:
    before = threads_now()
    for frame in seg.stream(clip):
        if frame.index == 1:
            break
    assert threads_now() == before
    frames = seg.stream(clip)
    first = next(iter(frames))  # an abandoned iterator: dropped at once, its stream closes
    assert first.index == 0 and frames.closed and threads_now() == before
    with pytest.raises(vidseg.VidsegError, match="only once"):
        next(iter(frames))
    assert len(list(seg.stream(clip, max_frames=3))) == 3  # the Segmenter is still fine


def test_a_failing_input_raises_in_the_callers_thread(seg: Segmenter, photo: Path) -> None:
    image = cv2.imread(str(photo))
    before = threads_now()

    def camera_loop():
        yield image
        yield image
        raise ConnectionError("camera unplugged")

    got = []
    with pytest.raises(ConnectionError, match="camera unplugged"):
        for frame in seg.stream(camera_loop()):
            got.append(frame.index)
    assert got in ([], [0], [0, 1]) and threads_now() == before
    with pytest.raises(vidseg.ImageError, match="dtype float32"):
        for _ in seg.stream([image, image.astype(np.float32)]):
            pass
    assert threads_now() == before


@pytest.mark.parametrize("bad, message", [
    (np.zeros((64, 64, 3), np.float32), "uint8"),
    (np.zeros((0, 64, 3), np.uint8), "empty image"),
    (np.zeros((64, 64, 5), np.uint8), "shape"),
    (np.zeros((2, 64, 64, 3), np.uint8), "shape"),
    ([[0, 1], [2, 3]], "numpy array"),
])
def test_bad_arrays_are_image_errors(seg: Segmenter, bad: object, message: str) -> None:
    with pytest.raises(vidseg.ImageError, match=message) as e:
        seg(bad)  # type: ignore[arg-type]
    assert isinstance(e.value, vidseg.VidsegError) and isinstance(e.value, ValueError)


def test_bad_models_devices_and_inputs_are_named(tmp_path: Path, seg: Segmenter, tiny_model: Path) -> None:
    with pytest.raises(vidseg.ModelError, match="no model at"):
        Segmenter(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(vidseg.ModelError, match="not a vidseg model directory"):
        Segmenter(tmp_path / "empty")
    with pytest.raises(vidseg.DeviceError, match="'NPU7' is not available"):
        Segmenter(tiny_model, device="NPU7")
    with pytest.raises(vidseg.InputError, match="input not found"):
        seg.stream(tmp_path / "missing.mp4")
    with pytest.raises(vidseg.VidsegError, match="iterable of images"):
        seg.stream(np.zeros((8, 8, 3), np.uint8))
    closed = Segmenter(tiny_model, device="CPU")
    closed.close()
    with pytest.raises(vidseg.VidsegError, match="closed"):
        closed(np.zeros((8, 8, 3), np.uint8))


def test_one_segmenter_shared_by_threads(seg: Segmenter, media: Path, clip: Path) -> None:
    images = [cv2.imread(str(media / n)) for n in ("building.jpg", "fruits.jpg", "baboon.jpg", "aloeL.jpg")]
    expected = [seg(im).labels for im in images]
    expected_stream = [f.labels for f in seg.stream(clip, max_frames=4)]
    got: dict[str, list[np.ndarray]] = {}
    errors: list[BaseException] = []

    def calls(k: int) -> None:
        try:
            got[f"call{k}"] = [seg(images[(k + j) % 4]).labels for j in range(4)]
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    def stream(k: int) -> None:
        try:
            got[f"stream{k}"] = [f.labels for f in seg.stream(clip, max_frames=4)]
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    workers = [threading.Thread(target=calls, args=(k,)) for k in range(3)]
    workers += [threading.Thread(target=stream, args=(k,)) for k in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=300)
    assert not errors and len(got) == 5
    for k in range(3):
        for j, labels in enumerate(got[f"call{k}"]):
            assert (labels == expected[(k + j) % 4]).all()
    for k in range(2):
        assert all((a == b).all() for a, b in zip(got[f"stream{k}"], expected_stream, strict=True))


def test_segment_batch_equals_one_call_each(seg: Segmenter, media: Path) -> None:
    images = [cv2.imread(str(media / n)) for n in ("building.jpg", "left01.jpg", "messi5.jpg")]
    batch = seg.segment_batch(images)
    assert all(isinstance(r, Result) for r in batch)
    assert all((b.labels == seg(im).labels).all() for b, im in zip(batch, images, strict=True))


def test_public_surface_is_all_and_typed() -> None:
    assert sorted(dir(vidseg)) == sorted(vidseg.__all__)
    for name in vidseg.__all__:
        obj = getattr(vidseg, name)
        if name != "__version__":
            assert obj.__doc__, name
    assert (Path(vidseg.__file__).parent / "py.typed").exists()
    code = ("import sys, time; t = time.perf_counter(); import vidseg; t = time.perf_counter() - t; "
            "heavy = [m for m in ('torch', 'openvino', 'cv2', 'av', 'onnx', 'nncf') if m in sys.modules]; "
            "vidseg.Segmenter; print(heavy, 'torch' in sys.modules, round(t * 1000, 1))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    heavy, torch_after_api, _ms = out.stdout.rsplit(" ", 2)
    assert heavy == "[]" and torch_after_api == "False", out.stdout


def test_docstring_examples_run(tmp_path: Path, seg: Segmenter, photo: Path, clip: Path, tiny_model: Path) -> None:
    import vidseg.api
    import vidseg.errors
    import vidseg.model.modeldir
    import vidseg.outputs.writer
    import vidseg.result
    import vidseg.runs.local
    import vidseg.summary

    globs = {"seg": seg, "image": cv2.imread(str(photo)), "video_path": clip, "model_dir": tiny_model,
             "out_dir": tmp_path, "Segmenter": Segmenter, "Writer": Writer}
    ran = 0
    for module in (vidseg.api, vidseg.result, vidseg.runs.local, vidseg.outputs.writer, vidseg.summary,
                   vidseg.model.modeldir, vidseg.errors):
        for test in doctest.DocTestFinder().find(module, globs=dict(globs)):
            runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
            runner.run(test)
            assert runner.failures == 0, f"{test.name}: see the output above"
            ran += runner.tries
    assert ran >= 20


def test_sample_script_prints_class_shares_of_a_video(seg: Segmenter, clip: Path, tiny_model: Path) -> None:
    out = subprocess.run([sys.executable, "samples/class_fractions.py", clip, "--model", tiny_model,
                          "--device", "CPU", "--max-frames", "3", "--top", "5"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    table, footer = out.stdout.split("\n\n")
    header, *rows = table.splitlines()
    assert header.split() == ["class", "mean", "max", "frames"] and footer.startswith("3 frames")
    names = [r.rsplit(None, 3)[0] for r in rows]
    expected: dict[str, float] = {}
    for f in seg.stream(clip, max_frames=3):
        for name, share in f.fractions().items():
            expected[name] = expected.get(name, 0.0) + share / 3
    assert names == sorted(expected, key=expected.get, reverse=True)[:5]  # mean share, largest first


def test_writer_takes_an_rgb_array_stream(tmp_path: Path, oracle_model: Path) -> None:
    images = [paint(np.full((120, 160), i % 8, np.uint8)) for i in range(4)]  # BGR, as OpenCV gives them
    with Segmenter(oracle_model, device="CPU") as oracle:
        for name, arrays, rgb in (("bgr", images, False), ("rgb", [im[:, :, ::-1] for im in images], True)):
            with oracle.stream(arrays, rgb=rgb, overlay_alpha=0.5) as frames, \
                    Writer(video=tmp_path / f"{name}.mp4", labels=tmp_path / name) as out:
                for frame in frames:
                    out.write(frame)
    assert decoded(tmp_path / "rgb.mp4") == decoded(tmp_path / "bgr.mp4") and len(decoded(tmp_path / "bgr.mp4")) == 4
    for i in range(4):
        assert (tmp_path / "rgb" / f"{i:06d}.png").read_bytes() == (tmp_path / "bgr" / f"{i:06d}.png").read_bytes()
