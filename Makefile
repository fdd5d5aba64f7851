# vidseg: two commands from a fresh clone.
#   make demo       install, get and convert the default model, make sample media, segment the sample clip
#   make test       the offline test suite (what CI runs)
#   make test-fast  the in-process unit tests, a few seconds to a minute
#   make bench      throughput and quality figures of this machine (bench/results.json)
# Offline: CHECKPOINT=/path/to/checkpoint.pth (variant.yml beside it) replaces the download.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
MODEL := models/seg_tiny_mask
CHECKPOINT ?=
CONVERT_SOURCE = $(if $(CHECKPOINT),--checkpoint $(CHECKPOINT),)
MEDIA := samples/media
BENCH_CKPT := bench/work/proxy_checkpoint/seg_tiny_mask/checkpoint.pth

.PHONY: install convert convert-int8 samples demo test test-fast wheel bench clean

install: $(BIN)/vidseg

$(BIN)/vidseg: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch is pinned exactly (the CPU build); anything looser pulls gigabytes of CUDA packages.
	$(BIN)/pip install --quiet -e '.[convert,plot,ray,dev]'
	touch $(BIN)/vidseg

convert: install
	$(BIN)/vidseg convert $(CONVERT_SOURCE) -o $(MODEL)

convert-int8: install samples
	$(BIN)/vidseg convert $(CONVERT_SOURCE) -o $(MODEL)-int8 --int8 --calibration $(MEDIA)/images

samples: install $(MEDIA)/pan_1080p.mp4

$(MEDIA)/pan_1080p.mp4: samples/make_samples.py
	$(BIN)/python samples/make_samples.py $(MEDIA)

demo: convert samples
	$(BIN)/vidseg process $(MEDIA)/pan_720p.mp4 -o out/demo.mp4 --labels out/demo_labels \
		--stats out/demo_stats.jsonl --summary out/demo_summary.json
	$(BIN)/vidseg process $(MEDIA)/images --recursive -o out/demo_images --labels out/demo_image_labels
	$(BIN)/vidseg plot out/demo_stats.jsonl -o out/demo_timeline.png --classes out/demo_labels/labels.json
	@echo
	@echo "outputs: out/demo.mp4 (overlay video), out/demo_labels/ (label PNGs, labels.json, frames.json),"
	@echo "         out/demo_stats.jsonl, out/demo_timeline.png, out/demo_summary.json, out/demo_images/,"
	@echo "         out/demo_image_labels/"

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m fast

# The installable package, as users get it: dist/vidseg-*.whl
wheel: install
	$(BIN)/python -m build --wheel --outdir dist .

# Benchmarks use the models in models/ if present. On a machine without the published weights they are
# converted from the trained proxy checkpoint (convert/proxy.py, a few minutes on CPU, built once): the
# speed is real, the labels are a stand-in (colour regions named as ADE20K classes), not ADE20K.
bench: install samples
	@if [ ! -f $(MODEL)/model.xml ] && [ -z "$(CHECKPOINT)" ] && [ ! -f $(BENCH_CKPT) ]; then \
		echo "bench: no $(MODEL) and no CHECKPOINT: training the proxy checkpoint"; \
		$(BIN)/python -m convert.proxy $(dir $(BENCH_CKPT)); fi
	$(eval SRC := $(if $(CHECKPOINT),--checkpoint $(CHECKPOINT),$(if $(wildcard $(MODEL)/model.xml),,--checkpoint $(BENCH_CKPT))))
	@[ -f $(MODEL)/model.xml ] || $(BIN)/vidseg convert $(SRC) -o $(MODEL) --quiet
	@[ -f $(MODEL)-int8/model.xml ] || $(BIN)/vidseg convert $(SRC) -o $(MODEL)-int8 --int8 \
		--calibration $(MEDIA)/images --quiet
	@[ -f $(MODEL)-fullres/model.xml ] || $(BIN)/vidseg convert $(SRC) -o $(MODEL)-fullres \
		--full-resolution-output --quiet
	$(BIN)/python -m bench

clean:
	rm -rf out dist bench/work bench/results.json $(MEDIA)/*.mp4 $(MEDIA)/images
