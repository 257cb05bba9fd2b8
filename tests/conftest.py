import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Deterministic algorithm choices: "auto" follows winograd.choose's fixed rule unless a test turns tuning on
# (tests/test_autotune.py, with a cache of its own). Subprocesses inherit this.
os.environ["TFVGG_AUTOTUNE"] = "0"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402


@pytest.fixture
def rng():
    """A fixed-seed NumPy generator, fresh for each test."""
    return np.random.default_rng(1234)


def random_images(rng, shape, scale=1.0):
    return tf.constant(rng.normal(0.0, scale, size=shape).astype(np.float32))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running (subprocesses, fresh installs); `make test-slow` runs "
                            "them and CI runs both lanes")
    # Keras' own np.array(x) call under NumPy 2; not ours, and noisy in every Keras test.
    config.addinivalue_line("filterwarnings", "ignore:__array__ implementation doesn't accept a copy keyword")


@pytest.fixture(autouse=True)
def _op_determinism_does_not_leak():
    """The trainer turns TensorFlow's process-wide op determinism on (--deterministic); a later test in the same
    worker (unseeded random ops in the tutorials) must not inherit it."""
    from tensorflow.python.framework import config as tf_config   # the only switch back; tests only
    before = tf_config.is_op_determinism_enabled()
    yield
    if tf_config.is_op_determinism_enabled() and not before:
        tf_config.disable_op_determinism()
