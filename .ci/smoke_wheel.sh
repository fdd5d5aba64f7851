#!/usr/bin/env bash
# The package as users get it: the wheel built from this checkout, installed with the converter extra into a
# fresh virtualenv in a folder outside the checkout, and run from there. Nothing here reads the checkout:
# the default model goes to VIDSEG_HOME, the media is made on the spot.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/vidseg-wheel.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$repo/.venv/bin/python" -m build --wheel --outdir "$work/dist" "$repo" >"$work/build.log" 2>&1 \
    || { cat "$work/build.log"; exit 1; }
wheel=$(ls "$work"/dist/vidseg-*.whl)
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --upgrade pip
# [plot] for vidseg plot. torch is pinned exactly in the extra (the CPU build); anything looser pulls gigabytes of CUDA packages.
"$work/venv/bin/pip" install --quiet "$wheel[convert,plot]"
cd "$work"
export VIDSEG_HOME="$work/home" XDG_CACHE_HOME="$work/cache"
bin="$work/venv/bin"
"$bin/vidseg" --help >/dev/null
"$bin/vidseg" info
"$bin/python" - <<'PY'
import importlib, pkgutil
import convert, vidseg
names = [m.name for pkg in (vidseg, convert) for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")
         if not m.name.endswith("__main__")]  # running the CLI is not importing it
for name in names:
    importlib.import_module(name)
print(f"imported {len(names)} modules from {vidseg.__file__}")
assert "/main/" not in vidseg.__file__ and "site-packages" in vidseg.__file__
PY
"$bin/python" -m convert.synthetic "$work/ckpt/seg_tiny_mask" >/dev/null
"$bin/vidseg" convert --checkpoint "$work/ckpt/seg_tiny_mask/checkpoint.pth" --quiet  # to VIDSEG_HOME/models
test -f "$work/home/models/seg_tiny_mask/model.xml"
ffmpeg -v error -f lavfi -i testsrc=size=320x240:rate=30000/1001 -t 0.2 -pix_fmt yuv420p clip.mp4
ffmpeg -v error -i clip.mp4 -frames:v 1 photo.png
"$bin/vidseg" process photo.png -o photo_overlay.png --labels photo_labels --device CPU --quiet
"$bin/vidseg" process clip.mp4 -o overlay.mp4 --labels labels --stats stats.jsonl --device CPU --quiet
"$bin/vidseg" plot stats.jsonl -o timeline.png
test -f photo_overlay.png -a -f labels/frames.json -a -f overlay.mp4 -a -f timeline.png
echo "wheel smoke run: passed ($(basename "$wheel"))"
