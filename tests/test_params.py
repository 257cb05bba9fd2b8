"""Parameter store: creation once, reuse, Glorot bounds, seeds, order."""
import math

import numpy as np
import pytest
import tensorflow as tf

import tfvgg
from tfvgg.initializers import GlorotUniform, fans


def test_conv_kernel_is_glorot_uniform_and_bias_zero():
    p = tfvgg.ParamStore(seed=3)
    tfvgg.conv_op(tf.zeros([1, 8, 8, 16]), "conv", 3, 3, 32, 1, 1, p)
    w, b = p["conv/w"].numpy(), p["conv/b"].numpy()
    bound = math.sqrt(6.0 / (3 * 3 * 16 + 3 * 3 * 32))
    assert w.shape == (3, 3, 16, 32)
    assert np.abs(w).max() <= bound
    assert np.abs(w).max() > 0.95 * bound      # 4,608 draws fill the interval
    assert abs(w.std() - bound / math.sqrt(3.0)) < 0.05 * bound  # uniform: sd = b / sqrt(3)
    np.testing.assert_array_equal(b, np.zeros(32, np.float32))


def test_fc_kernel_is_glorot_uniform_and_bias_point_one():
    p = tfvgg.ParamStore(seed=3)
    tfvgg.fc_op(tf.zeros([2, 300]), "fc", 200, p)
    w, b = p["fc/w"].numpy(), p["fc/b"].numpy()
    bound = math.sqrt(6.0 / (300 + 200))
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    np.testing.assert_allclose(b, np.full(200, 0.1, np.float32))


def test_fans():
    assert fans((3, 3, 64, 128)) == (576, 1152)
    assert fans((25088, 4096)) == (25088, 4096)
    with pytest.raises(ValueError):
        fans((3, 3, 3))
    assert GlorotUniform().bound((10, 14)) == pytest.approx(0.5)


def _build(seed):
    p = tfvgg.ParamStore(seed=seed)
    tfvgg.inference_op(tf.zeros([1, 32, 32, 3]), p, config="A", num_classes=10)
    return p


def test_same_seed_gives_identical_variables():
    a, b, c = _build(7), _build(7), _build(8)
    assert a.names == b.names
    for name in a.names:
        np.testing.assert_array_equal(a[name].numpy(), b[name].numpy())
    assert not np.array_equal(a["conv1_1/w"].numpy(), c["conv1_1/w"].numpy())


def test_values_do_not_depend_on_build_order():
    p, q = tfvgg.ParamStore(seed=1), tfvgg.ParamStore(seed=1)
    x = tf.zeros([1, 4, 4, 3])
    tfvgg.conv_op(x, "first", 3, 3, 8, 1, 1, p)
    tfvgg.conv_op(x, "second", 3, 3, 8, 1, 1, p)
    tfvgg.conv_op(x, "second", 3, 3, 8, 1, 1, q)
    np.testing.assert_array_equal(p["second/w"].numpy(), q["second/w"].numpy())


def test_params_is_the_classic_ordered_list():
    p = _build(0)
    names = [f"{layer}/{v}" for layer in ("conv1_1", "conv2_1", "conv3_1", "conv3_2", "conv4_1", "conv4_2",
                                          "conv5_1", "conv5_2", "fc6", "fc7", "fc8") for v in ("w", "b")]
    assert p.names == names
    assert [v.shape.rank for v in p.params] == [4, 1] * 8 + [2, 1] * 3
    assert p.params[0] is p["conv1_1/w"]


def test_second_call_reuses_variables():
    p = tfvgg.ParamStore()
    x = tf.ones([2, 8, 8, 3])
    y1 = tfvgg.conv_op(x, "c", 3, 3, 4, 1, 1, p)
    y2 = tfvgg.conv_op(x, "c", 3, 3, 4, 1, 1, p)
    assert len(p) == 2 and len(p.trainable_variables) == 2
    np.testing.assert_array_equal(y1.numpy(), y2.numpy())


def test_existing_variable_with_other_shape_is_refused():
    p = tfvgg.ParamStore()
    tfvgg.fc_op(tf.ones([1, 8]), "fc", 4, p)
    with pytest.raises(ValueError, match="fc/b.*shape 4.*needs 5"):
        p.get_or_create("fc/b", (5,), tfvgg.Constant(0.0))


def test_variables_are_float32_whatever_the_compute_dtype():
    p = tfvgg.ParamStore()
    y = tfvgg.conv_op(tf.ones([1, 4, 4, 3], tf.bfloat16), "c", 3, 3, 4, 1, 1, p)
    assert y.dtype == tf.bfloat16
    assert all(v.dtype == tf.float32 for v in p.params)


def test_unknown_name_lists_the_store():
    p = _build(0)
    with pytest.raises(KeyError, match="conv9_9/w.*conv1_1/w"):
        p["conv9_9/w"]


def test_inference_copy_gives_the_same_low_precision_results():
    p = tfvgg.ParamStore(seed=2)
    images = tf.random.stateless_normal([2, 32, 32, 3], seed=(1, 1))
    tfvgg.inference_op(images, p, config="A", num_classes=10)
    q = p.inference_copy("bfloat16")
    assert q.names == p.names and all(v.dtype == tf.bfloat16 for v in q.params)
    assert q.trainable_variables == () and len(q.params) == len(p.params)
    cast_each_call = tfvgg.inference_op(images, p, config="A", dtype="bfloat16")[2]
    cached = tfvgg.inference_op(images, q, config="A", dtype="bfloat16")[2]
    np.testing.assert_array_equal(cached.numpy(), cast_each_call.numpy())
    p["fc8/b"].assign(p["fc8/b"] + 1.0)
    assert not np.array_equal(p["fc8/b"].numpy(), q["fc8/b"].numpy().astype(np.float32))  # a snapshot
