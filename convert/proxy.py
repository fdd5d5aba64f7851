"""A trained stand-in for the published Seg-T-Mask/16 weights, for measuring approximations offline.

Random weights give near-ties between classes at every pixel, so anything approximate (INT8, reuse between
frames) looks far worse on them than on a trained model. The published weights cannot be downloaded
everywhere, so this trains the same architecture briefly on CPU, with a fixed seed, on pseudo-labels that
need no annotation: each pixel of a blurred photo is assigned the nearest of a fixed colour palette, and each
palette colour stands for one ADE20K class (sky blue -> "sky", green -> "tree", ...). What the model learns
is a coherent, confident colour-region segmenter, not ADE20K: a proxy for measurement only.

Training runs on small crops (8x8 patches) to stay cheap on the slowest CPUs; the stored position
embedding is for the 512 window, resized during training exactly as at inference time. Photos and frames
come from Debian's opencv-doc data (``samples/make_samples.py`` fetches it).

    python -m convert.proxy OUT_DIR [--data DIR] [--steps N]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from convert.checkpoint import NORMALIZATION, load_variant
from convert.segmenter import Segmenter
from convert.synthetic import random_state, write_checkpoint

# Palette colour (RGB) -> ADE20K class index it stands for. Chosen so that common photo regions map to
# plausible classes; ADE20K indices as in ../shared/data/ade20k_classes.csv (0 = wall).
PALETTE: list[tuple[tuple[int, int, int], int]] = [
    ((20, 20, 20), 0),  # near black -> wall
    ((70, 70, 70), 6),  # dark grey -> road
    ((128, 128, 128), 1),  # grey -> building
    ((190, 190, 190), 3),  # light grey -> floor
    ((240, 240, 240), 5),  # white -> ceiling
    ((135, 180, 235), 2),  # sky blue -> sky
    ((40, 70, 160), 21),  # deep blue -> water
    ((40, 110, 40), 4),  # green -> tree
    ((120, 180, 80), 9),  # light green -> grass
    ((70, 90, 40), 17),  # olive -> plant
    ((110, 75, 45), 13),  # brown -> earth
    ((170, 120, 80), 15),  # tan -> door
    ((220, 170, 140), 12),  # skin -> person
    ((180, 40, 40), 20),  # red -> car
    ((230, 130, 40), 10),  # orange -> cabinet
    ((230, 210, 80), 7),  # yellow -> bed
    ((120, 50, 120), 19),  # purple -> chair
    ((200, 90, 150), 18),  # pink -> curtain
    ((60, 40, 30), 14),  # dark brown -> table
    ((150, 150, 110), 16),  # khaki -> mountain
]
WINDOW = 512
CROP = 128
BATCH = 16
SEED = 0
STEPS = 160


def pseudo_labels(rgb: np.ndarray) -> np.ndarray:
    """Per-pixel palette index of a blurred image (blur makes regions, not pixel noise)."""
    blurred = cv2.GaussianBlur(rgb, (0, 0), 5).astype(np.float32)
    palette = np.array([c for c, _ in PALETTE], np.float32)
    d = ((blurred[:, :, None, :] - palette[None, None]) ** 2).sum(-1)
    return d.argmin(-1).astype(np.int64)


def _at_protocol_scale(bgr: np.ndarray) -> np.ndarray:
    """RGB image with its short side at the window size, as the evaluation protocol sees it."""
    h, w = bgr.shape[:2]
    s = WINDOW / min(h, w)
    return cv2.cvtColor(cv2.resize(bgr, (int(w * s + 0.5), int(h * s + 0.5)), interpolation=cv2.INTER_AREA),
                        cv2.COLOR_BGR2RGB)


def training_images(data: Path) -> list[np.ndarray]:
    """Colour photos plus every 25th frame of the sample videos, sorted by name for determinism."""
    images = []
    for path in sorted(data.iterdir()):
        if path.suffix.lower() in (".jpg", ".png"):
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is not None and min(bgr.shape[:2]) >= 200 and bgr.std(axis=2).mean() > 4:
                images.append(_at_protocol_scale(bgr))
        elif path.suffix.lower() == ".avi":
            cap = cv2.VideoCapture(str(path))
            index = 0
            while True:
                ok, bgr = cap.read()
                if not ok:
                    break
                if index % 25 == 0:
                    images.append(_at_protocol_scale(bgr))
                index += 1
            cap.release()
    if not images:
        raise SystemExit(f"no training images in {data} (run samples/make_samples.py first)")
    return images


def _targets(labels: np.ndarray, patch: int) -> np.ndarray:
    """Soft per-patch targets: the share of each class inside every patch (boundaries stay uncertain)."""
    n_cls = 150
    h, w = labels.shape
    classes = np.array([c for _, c in PALETTE])[labels]
    onehot = np.zeros((h // patch, w // patch, n_cls), np.float32)
    cells = classes[: h // patch * patch, : w // patch * patch].reshape(h // patch, patch, w // patch, patch)
    for c in np.unique(cells):
        onehot[:, :, c] = (cells == c).mean(axis=(1, 3))
    return onehot


def train(out_dir: Path, data: Path, steps: int, log: bool = True) -> Path:
    """Write an official-format checkpoint trained on ``data``'s images; return its path."""
    torch.manual_seed(SEED)
    torch.set_num_threads(2)  # fixed: the result must not depend on the machine's core count
    ckpt = write_checkpoint(out_dir, "tiny", seed=SEED)
    variant = load_variant(out_dir / "variant.yml")
    cfg = variant.config
    model = Segmenter(cfg)
    model.load_state_dict(random_state(cfg, SEED))
    images = training_images(data)
    labels = [pseudo_labels(im) for im in images]
    stats = NORMALIZATION[variant.normalization]
    mean, std = (torch.tensor(stats[k]).view(1, 3, 1, 1) for k in ("mean", "std"))
    rng = np.random.default_rng(SEED)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=steps, pct_start=0.1)
    start = time.perf_counter()
    model.train()
    for step in range(steps):
        batch, target = [], []
        for _ in range(BATCH):
            i = int(rng.integers(len(images)))
            im, lab = images[i], labels[i]
            y = int(rng.integers(im.shape[0] - CROP + 1))
            x = int(rng.integers(im.shape[1] - CROP + 1))
            crop, crop_lab = im[y:y + CROP, x:x + CROP], lab[y:y + CROP, x:x + CROP]
            if rng.random() < 0.5:
                crop, crop_lab = crop[:, ::-1], crop_lab[:, ::-1]
            batch.append(np.ascontiguousarray(crop))
            target.append(_targets(crop_lab, cfg.patch_size))
        x_t = (torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).float() / 255 - mean) / std
        t_t = torch.from_numpy(np.stack(target)).permute(0, 3, 1, 2)
        loss = F.cross_entropy(model(x_t), t_t)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if log and (step % 50 == 0 or step == steps - 1):
            print(f"step {step:4d}  loss {loss.item():.3f}  {time.perf_counter() - start:.0f} s", flush=True)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    torch.save({"model": state, "n_cls": cfg.n_cls, "epoch": steps}, ckpt)
    return ckpt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--data", type=Path,
                        default=Path("samples/media/opencv-doc/usr/share/doc/opencv-doc/examples/data"))
    parser.add_argument("--steps", type=int, default=STEPS)
    args = parser.parse_args()
    print(train(args.out_dir, args.data, args.steps))


if __name__ == "__main__":
    main()
