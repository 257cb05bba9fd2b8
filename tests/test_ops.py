"""Each primitive against a reference no one here wrote (Keras layers) or the paper's formula."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import tfvgg
from tests.conftest import random_images


def test_conv_op_matches_keras_conv2d(rng):
    x = random_images(rng, (2, 9, 11, 5))
    p = tfvgg.ParamStore(seed=5)
    ours = tfvgg.conv_op(x, "conv", 3, 3, 7, 2, 1, p)
    ref = keras.layers.Conv2D(7, 3, strides=(2, 1), padding="same", activation="relu")
    ref.build(x.shape)
    ref.set_weights([p["conv/w"].numpy(), rng.normal(size=7).astype(np.float32)])
    p["conv/b"].assign(ref.get_weights()[1])
    ours = tfvgg.conv_op(x, "conv", 3, 3, 7, 2, 1, p)
    assert ours.shape == (2, 5, 11, 7)
    np.testing.assert_allclose(ours.numpy(), ref(x).numpy(), rtol=1e-5, atol=1e-5)


def test_conv_op_valid_padding_matches_keras(rng):
    x = random_images(rng, (1, 12, 12, 3))
    p = tfvgg.ParamStore()
    ours = tfvgg.conv_op(x, "conv", 5, 5, 4, 1, 1, p, padding="VALID")
    ref = keras.layers.Conv2D(4, 5, padding="valid", activation="relu")
    ref.build(x.shape)
    ref.set_weights([p["conv/w"].numpy(), p["conv/b"].numpy()])
    np.testing.assert_allclose(ours.numpy(), ref(x).numpy(), rtol=1e-5, atol=1e-5)


def test_fc_op_matches_keras_dense_and_logits_skip_relu(rng):
    x = random_images(rng, (3, 20))
    p = tfvgg.ParamStore()
    relu_out = tfvgg.fc_op(x, "fc", 6, p)
    logits = tfvgg.fc_op(x, "fc", 6, p, relu=False)
    ref = keras.layers.Dense(6)
    ref.build(x.shape)
    ref.set_weights([p["fc/w"].numpy(), p["fc/b"].numpy()])
    expected = ref(x).numpy()
    np.testing.assert_allclose(logits.numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(relu_out.numpy(), np.maximum(expected, 0), rtol=1e-5, atol=1e-6)
    assert (logits.numpy() < 0).any()


@pytest.mark.parametrize("kernel,stride,padding", [(2, 2, "SAME"), (3, 2, "VALID"), (3, 2, "SAME")])
def test_mpool_op_matches_keras(rng, kernel, stride, padding):
    x = random_images(rng, (2, 13, 13, 4))
    ours = tfvgg.mpool_op(x, "pool", kernel, kernel, stride, stride, padding=padding)
    ref = keras.layers.MaxPooling2D(kernel, stride, padding=padding.lower())(x)
    np.testing.assert_array_equal(ours.numpy(), ref.numpy())


def test_lrn_op_follows_the_alexnet_formula(rng):
    x = np.abs(rng.normal(0, 30, size=(2, 3, 3, 8))).astype(np.float32)
    ours = tfvgg.lrn_op(tf.constant(x), "lrn").numpy()
    k, n, alpha, beta = 2.0, 5, 1e-4, 0.75
    expected = np.empty_like(x)
    for i in range(8):
        window = x[..., max(0, i - n // 2):min(8, i + n // 2 + 1)]
        expected[..., i] = x[..., i] / (k + alpha * (window ** 2).sum(-1)) ** beta
    np.testing.assert_allclose(ours, expected, rtol=1e-5)


def test_lrn_op_nchw_equals_nhwc(rng):
    x = random_images(rng, (2, 5, 5, 6), scale=10.0)
    nhwc = tfvgg.lrn_op(x, "lrn")
    nchw = tfvgg.lrn_op(tf.transpose(x, (0, 3, 1, 2)), "lrn", data_format="NCHW")
    np.testing.assert_allclose(tf.transpose(nchw, (0, 2, 3, 1)).numpy(), nhwc.numpy(), rtol=1e-6)


def test_dropout_keep_prob():
    x = tf.ones([200, 100])
    assert tfvgg.dropout_op(x, "drop", 1.0) is x
    y = tfvgg.dropout_op(x, "drop", 0.5, seed=1).numpy()
    assert set(np.unique(y)) <= {0.0, 2.0}
    assert 0.45 < (y == 0).mean() < 0.55
    y = tfvgg.dropout_op(x, "drop", tf.constant(0.25), seed=1).numpy()
    assert set(np.unique(y)) <= {0.0, 4.0}


@pytest.mark.parametrize("bad", [0.0, -0.5, 1.5])
def test_dropout_rejects_keep_prob_outside_unit_interval(bad):
    with pytest.raises(ValueError, match=r"keep_prob must be in \(0, 1\]"):
        tfvgg.dropout_op(tf.ones([2, 2]), "drop", bad)


def test_dropout_rejects_tensor_keep_prob_outside_unit_interval():
    with pytest.raises(tf.errors.InvalidArgumentError, match="keep_prob"):
        tfvgg.dropout_op(tf.ones([2, 2]), "drop", tf.constant(1.5))


def test_flatten_is_hwc_order_in_both_layouts(rng):
    x = random_images(rng, (2, 3, 4, 5))
    nhwc = tfvgg.flatten_op(x)
    nchw = tfvgg.flatten_op(tf.transpose(x, (0, 3, 1, 2)), data_format="NCHW")
    np.testing.assert_array_equal(nhwc.numpy(), x.numpy().reshape(2, 60))
    np.testing.assert_array_equal(nchw.numpy(), nhwc.numpy())


def test_conv_op_errors_name_the_layer():
    p = tfvgg.ParamStore()
    with pytest.raises(ValueError, match=r"conv1_1 expects a rank-4 input \[N, H, W, C\]; got shape \(8, 8, 3\)"):
        tfvgg.conv_op(tf.zeros([8, 8, 3]), "conv1_1", 3, 3, 4, 1, 1, p)
    with pytest.raises(TypeError, match="conv1_1 expects a float input.*int32"):
        tfvgg.conv_op(tf.zeros([1, 8, 8, 3], tf.int32), "conv1_1", 3, 3, 4, 1, 1, p)
    with pytest.raises(ValueError, match="data_format must be one of NHWC, NCHW"):
        tfvgg.conv_op(tf.zeros([1, 8, 8, 3]), "conv1_1", 3, 3, 4, 1, 1, p, data_format="NWHC")
    tfvgg.conv_op(tf.zeros([1, 8, 8, 3]), "conv1_1", 3, 3, 4, 1, 1, p)
    with pytest.raises(ValueError, match="conv1_1 was created for 3 input channels .*got 1"):
        tfvgg.conv_op(tf.zeros([1, 8, 8, 1]), "conv1_1", 3, 3, 4, 1, 1, p)


def test_valid_window_larger_than_input_is_refused():
    with pytest.raises(ValueError, match="pool5: a 3x3 VALID window does not fit an input of 2x2"):
        tfvgg.mpool_op(tf.zeros([1, 2, 2, 3]), "pool5", 3, 3, 2, 2, padding="VALID")
