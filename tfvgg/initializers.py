"""Weight initializers as small objects: ``init(shape, dtype, seed) -> tf.Tensor``.

``seed`` is a stateless seed (a pair of ints), so the same seed always gives the
same values, whatever else the program has drawn from a random generator.
"""
import math

import tensorflow as tf


def fans(shape):
    """(fan_in, fan_out) of a kernel shape.

    Dense ``[n_in, n_out]``: (n_in, n_out).
    Conv ``[kh, kw, n_in, n_out]``: (kh*kw*n_in, kh*kw*n_out); each input and
    each output unit is connected through the whole kh x kw window.
    """
    shape = tuple(int(d) for d in shape)
    if len(shape) == 2:
        return shape[0], shape[1]
    if len(shape) == 4:
        receptive_field = shape[0] * shape[1]
        return receptive_field * shape[2], receptive_field * shape[3]
    raise ValueError(f"fans need a dense [n_in, n_out] or conv [kh, kw, n_in, n_out] shape; got {shape}")


class GlorotUniform:
    """Xavier/Glorot uniform: U(-b, b) with b = sqrt(6 / (fan_in + fan_out))."""

    def bound(self, shape):
        fan_in, fan_out = fans(shape)
        return math.sqrt(6.0 / (fan_in + fan_out))

    def __call__(self, shape, dtype, seed):
        b = self.bound(shape)
        return tf.random.stateless_uniform(shape, seed=seed, minval=-b, maxval=b, dtype=dtype)

    def __repr__(self):
        return "GlorotUniform()"


class Constant:
    """Every element equal to ``value`` (biases: 0.0 for conv, 0.1 for fc)."""

    def __init__(self, value):
        self.value = float(value)

    def __call__(self, shape, dtype, seed=None):
        del seed  # deterministic already
        return tf.fill(shape, tf.constant(self.value, dtype=dtype))

    def __repr__(self):
        return f"Constant({self.value})"


class FromValues:
    """Exactly the given array (loading weights into a new store)."""

    def __init__(self, values):
        self.values = values

    def __call__(self, shape, dtype, seed=None):
        del seed
        value = tf.convert_to_tensor(self.values, dtype=dtype)
        if tuple(value.shape) != tuple(shape):
            raise ValueError(f"values of shape {tuple(value.shape)} cannot initialize a variable of shape {tuple(shape)}")
        return value

    def __repr__(self):
        return f"FromValues(shape={tuple(self.values.shape)})"
