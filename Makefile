# Two commands do all the set-up: `make bench` (the VGG-16 benchmark) and `make test` (the fast lane of the tests).
# Both create .venv with Python 3 and install tfvgg with the TensorFlow build for this machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# tensorflow[and-cuda] where an NVIDIA driver answers, tensorflow-cpu elsewhere (smaller, no CUDA).
TF_EXTRA ?= $(shell nvidia-smi -L >/dev/null 2>&1 && echo gpu || echo cpu)
BENCH_FLAGS ?= --batch_size=32
# TensorFlow's C++ INFO lines (CPU features, XLA) hidden; tfvgg itself changes no environment variable.
export TF_CPP_MIN_LOG_LEVEL ?= 1

.PHONY: bench test test-slow test-all install clean

install: $(VENV)/.installed-$(TF_EXTRA)

$(VENV)/.installed-$(TF_EXTRA): setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(TF_EXTRA),test,peers]'
	touch $@

bench: install
	$(PY) -m benchmarks.vgg16 $(BENCH_FLAGS)

# The fast lane, one worker per core (a test file stays on one worker, sharing its compiled graphs); the slow
# lane holds what must stay long, one test at a time (several start TensorFlow processes); CI runs both.
test: install
	$(PY) -m pytest -q -n auto --dist loadfile -m "not slow" tests

test-slow: install
	$(PY) -m pytest -q -m slow tests

test-all: test test-slow

clean:
	rm -rf $(VENV) *.egg-info build .pytest_cache
