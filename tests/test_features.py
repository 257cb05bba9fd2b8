"""Endpoints, feature extraction at any size, and fine-tuning with frozen layers."""
import numpy as np
import pytest
import tensorflow as tf

import tfvgg
from tests.conftest import random_images


def test_every_named_activation_is_returned(rng):
    p = tfvgg.ParamStore()
    images = random_images(rng, (2, 32, 32, 3))
    _, _, logits, endpoints = tfvgg.inference_op(images, p, config="D", num_classes=10, return_endpoints=True)
    names = list(endpoints)
    assert names[:3] == ["conv1_1", "conv1_2", "pool1"]
    assert names[names.index("pool5"):] == ["pool5", "flatten", "fc6", "drop6", "fc7", "drop7", "fc8"]
    assert endpoints["conv3_3"].shape == (2, 8, 8, 256)
    assert endpoints["fc7"].shape == (2, 4096)
    np.testing.assert_array_equal(endpoints["fc8"].numpy(), logits.numpy())


def test_features_at_320x240_without_the_classifier(rng):
    p = tfvgg.ParamStore()
    images = random_images(rng, (1, 240, 320, 3))
    features, endpoints = tfvgg.inference_op(images, p, config="D", include_top=False, return_endpoints=True)
    assert features.shape == (1, 8, 10, 512)   # SAME pooling: 240 -> 120, 60, 30, 15, 8
    assert "fc6/w" not in p and len(p) == 26
    assert list(endpoints)[-1] == "pool5"
    pooled = tfvgg.inference_op(images, p, config="D", include_top=False, pooling="avg")
    np.testing.assert_allclose(pooled.numpy(), features.numpy().mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
    maxed = tfvgg.inference_op(images, p, config="D", include_top=False, pooling="max")
    np.testing.assert_array_equal(maxed.numpy(), features.numpy().max(axis=(1, 2)))


def test_pooling_only_without_top():
    with pytest.raises(ValueError, match="pooling must be None, 'avg' or 'max', and only with include_top=False"):
        tfvgg.inference_op(tf.zeros([1, 32, 32, 3]), tfvgg.ParamStore(), pooling="avg")


def test_fine_tune_a_new_classifier_with_the_convolutions_frozen(rng):
    p = tfvgg.ParamStore(seed=1)
    images = random_images(rng, (4, 32, 32, 3))
    tfvgg.inference_op(images, p, config="D", num_classes=1000)
    p.drop(["fc8"])
    tfvgg.inference_op(images, p, config="D", num_classes=5)
    assert p["fc8/w"].shape == (4096, 5) and p.names[-2:] == ["fc8/w", "fc8/b"]
    p.freeze(p.layers_up_to("conv5_3"))
    assert p.frozen_layers[0] == "conv1_1" and p.frozen_layers[-1] == "conv5_3"
    trainable = p.trainable_variables
    assert [v.name.split(":")[0] for v in trainable] == ["fc6_w", "fc6_b", "fc7_w", "fc7_b", "fc8_w", "fc8_b"]
    before = {n: v.numpy().copy() for n, v in zip(p.names, p.params)}
    labels = tf.constant([0, 1, 2, 3])
    with tf.GradientTape() as tape:
        logits = tfvgg.inference_op(images, p, config="D")[2]   # num_classes follows the store: 5
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
    grads = tape.gradient(loss, trainable)
    for variable, grad in zip(trainable, grads):
        variable.assign_sub(0.1 * grad)
    changed = {n for n, v in zip(p.names, p.params) if not np.array_equal(before[n], v.numpy())}
    assert changed == {"fc6/w", "fc6/b", "fc7/w", "fc7/b", "fc8/w", "fc8/b"}
    p.unfreeze()
    assert len(p.trainable_variables) == 32


def test_freeze_unknown_layer():
    p = tfvgg.ParamStore()
    tfvgg.inference_op(tf.zeros([1, 28, 28, 1]), p, config="lenet")
    with pytest.raises(ValueError, match="no layer 'conv9'.*'conv1', 'conv2', 'fc3', 'fc4'"):
        p.freeze(["conv9"])
