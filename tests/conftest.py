import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402


@pytest.fixture
def rng():
    """A fixed-seed NumPy generator, fresh for each test."""
    return np.random.default_rng(1234)


def random_images(rng, shape, scale=1.0):
    return tf.constant(rng.normal(0.0, scale, size=shape).astype(np.float32))
