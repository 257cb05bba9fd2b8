# Two commands do all the set-up: `make bench` (the VGG-16 benchmark) and `make test`.
# Both create .venv with Python 3 and install tfvgg with the TensorFlow build for this machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# tensorflow[and-cuda] where an NVIDIA driver answers, tensorflow-cpu elsewhere (smaller, no CUDA).
TF_EXTRA ?= $(shell nvidia-smi -L >/dev/null 2>&1 && echo gpu || echo cpu)
BENCH_FLAGS ?= --batch_size=32

.PHONY: bench test install clean

install: $(VENV)/.installed-$(TF_EXTRA)

$(VENV)/.installed-$(TF_EXTRA): setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(TF_EXTRA),train,test]'
	touch $@

bench: install
	$(PY) -m benchmarks.vgg16 $(BENCH_FLAGS)

test: install
	$(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
