"""inference_op: every configuration, the Keras cross-check, tf.function, layouts, precisions, errors."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import tfvgg
from tfvgg.ops import nchw_supported
from tests.conftest import random_images

SMALL_INPUTS = {"lenet": (28, 28, 1), "alexnet": (64, 64, 3), "vgg11_small": (28, 28, 1)}


@pytest.mark.parametrize("config", ["A", "A-LRN", "B", "C", "D", "E", "vgg11_small", "alexnet", "lenet"])
def test_every_network_builds_on_small_images_and_matches_summary(rng, config):
    h, w, c = SMALL_INPUTS.get(config, (32, 32, 3))
    p = tfvgg.ParamStore(seed=0)
    images = random_images(rng, (2, h, w, c))
    predictions, softmax, logits = tfvgg.inference_op(images, p, config=config, num_classes=7)
    assert logits.shape == softmax.shape == (2, 7)
    assert predictions.shape == (2,) and predictions.dtype == tf.int64
    np.testing.assert_allclose(softmax.numpy().sum(1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(predictions.numpy(), np.argmax(logits.numpy(), 1))
    assert p.count_params() == tfvgg.summary(config, (h, w, c), num_classes=7, print_fn=None).total_params


@pytest.mark.parametrize("config", ["A", "A-LRN", "B", "C", "D", "E"])
def test_real_variables_at_224_match_the_paper(config):
    """Tracing creates the variables (lifted out of the graph) without running a forward pass."""
    p = tfvgg.ParamStore()
    build = tf.function(lambda x: tfvgg.inference_op(x, p, config=config)[2])
    build.get_concrete_function(tf.TensorSpec([None, 224, 224, 3], tf.float32))
    assert p.count_params() == tfvgg.summary(config, (224, 224, 3), print_fn=None).total_params
    assert len(p) == 2 * sum(1 for n in p.names if n.endswith("/w"))


def _copy_keras_weights(model, p):
    """Keras' kernels are HWIO and its flatten is H, W, C order: they map one to one."""
    weights = [w for layer in model.layers for w in layer.get_weights()]
    assert len(weights) == len(p.params)
    for ours, theirs in zip(p.params, weights):
        assert tuple(ours.shape) == theirs.shape, ours.name
        ours.assign(theirs)


@pytest.mark.parametrize("config,keras_model", [("D", keras.applications.VGG16), ("E", keras.applications.VGG19)])
def test_logits_equal_keras_applications(rng, config, keras_model):
    images = random_images(rng, (2, 224, 224, 3), scale=50.0)
    model = keras_model(weights=None, classifier_activation=None)
    p = tfvgg.ParamStore()
    tfvgg.inference_op(images[:1], p, config=config)
    _copy_keras_weights(model, p)
    ours = tf.function(lambda x: tfvgg.inference_op(x, p, config=config)[2])(images).numpy()
    theirs = model(images, training=False).numpy()
    scale = np.abs(theirs).max()
    assert scale > 0
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-4 * scale)


def test_eager_and_tf_function_agree_and_trace_once(rng):
    p = tfvgg.ParamStore(seed=2)
    images = random_images(rng, (2, 32, 32, 3))
    @tf.function
    def forward(x):
        return tfvgg.inference_op(x, p, config="B", num_classes=10)[2]

    graph_logits = forward(images)   # first call: creates the variables
    count_after_first_call = forward.experimental_get_tracing_count()
    for _ in range(3):
        forward(images)
        forward(random_images(rng, (2, 32, 32, 3)))
    assert forward.experimental_get_tracing_count() == count_after_first_call
    assert len(p) == 2 * 13 and len(p.variables) == 26  # B: 10 conv + 3 fc
    eager_logits = tfvgg.inference_op(images, p, config="B", num_classes=10)[2]
    np.testing.assert_allclose(graph_logits.numpy(), eager_logits.numpy(), rtol=1e-5, atol=1e-6)
    assert len(p) == 26


def test_store_built_eagerly_then_tf_function_traces_exactly_once(rng):
    p = tfvgg.ParamStore(seed=2)
    images = random_images(rng, (2, 32, 32, 3))
    tfvgg.inference_op(images, p, config="A", num_classes=10)
    forward = tf.function(lambda x: tfvgg.inference_op(x, p, config="A", num_classes=10)[2])
    forward(images)
    forward(images)
    assert forward.experimental_get_tracing_count() == 1


@pytest.mark.skipif(not nchw_supported(), reason="this TensorFlow build has no NCHW conv/pool kernel on this device")
@pytest.mark.parametrize("config", ["D", "alexnet"])
def test_nchw_equals_nhwc(rng, config):
    h, w, c = SMALL_INPUTS.get(config, (32, 32, 3))
    images = random_images(rng, (2, h, w, c))
    p = tfvgg.ParamStore(seed=4)
    nhwc = tfvgg.inference_op(images, p, config=config)[2]
    variables_after_nhwc = len(p)
    nchw = tfvgg.inference_op(tf.transpose(images, (0, 3, 1, 2)), p, config=config, data_format="NCHW")[2]
    assert len(p) == variables_after_nhwc  # the same weights serve both layouts
    np.testing.assert_allclose(nchw.numpy(), nhwc.numpy(), rtol=1e-4, atol=1e-4 * np.abs(nhwc.numpy()).max())


@pytest.mark.parametrize("dtype,tolerance", [("bfloat16", 0.05), ("float16", 0.01)])
def test_low_precision_close_to_float32(rng, dtype, tolerance):
    images = random_images(rng, (4, 32, 32, 3))
    p = tfvgg.ParamStore(seed=6)
    reference = tfvgg.inference_op(images, p, config="D", num_classes=10)[2].numpy()
    low = tfvgg.inference_op(images, p, config="D", num_classes=10, dtype=dtype)[2]
    assert low.dtype == tf.float32  # logits come back in float32
    assert all(v.dtype == tf.float32 for v in p.params)
    scale = np.abs(reference).max()
    np.testing.assert_allclose(low.numpy(), reference, rtol=0, atol=tolerance * scale)


def test_unknown_config():
    with pytest.raises(ValueError, match="unknown config 'VGG-99'; valid: A, A-LRN, B, C, D, E"):
        tfvgg.inference_op(tf.zeros([1, 32, 32, 3]), tfvgg.ParamStore(), config="VGG-99")


def test_wrong_rank():
    with pytest.raises(ValueError, match=r"D expects images of rank 4 \(\[N, H, W, C\]\); got shape \(32, 32, 3\)"):
        tfvgg.inference_op(tf.zeros([32, 32, 3]), tfvgg.ParamStore())


def test_non_float_images():
    with pytest.raises(TypeError, match="expects float images; got uint8"):
        tfvgg.inference_op(tf.zeros([1, 32, 32, 3], tf.uint8), tfvgg.ParamStore())


def test_channel_count_differs_from_variables():
    p = tfvgg.ParamStore()
    tfvgg.inference_op(tf.zeros([1, 32, 32, 3]), p, config="A")
    with pytest.raises(ValueError, match="conv1_1 was created for 3 input channels.*got 1"):
        tfvgg.inference_op(tf.zeros([1, 32, 32, 1]), p, config="A")


def test_image_size_that_no_longer_fits_fc6():
    p = tfvgg.ParamStore()
    tfvgg.inference_op(tf.zeros([1, 64, 64, 3]), p, config="A")
    with pytest.raises(ValueError, match=r"fc6 expects 2048 inputs \(2x2x512, images of 64x64\); "
                                         r"got 8192 \(4x4x512, images of 128x128\)"):
        tfvgg.inference_op(tf.zeros([1, 128, 128, 3]), p, config="A")
    # a size that pools to the same 2x2 still works
    assert tfvgg.inference_op(tf.zeros([1, 57, 60, 3]), p, config="A")[2].shape == (1, 1000)


@pytest.mark.parametrize("keep_prob", [0.0, 1.01, -1])
def test_keep_prob_outside_unit_interval(keep_prob):
    with pytest.raises(ValueError, match="keep_prob"):
        tfvgg.inference_op(tf.zeros([1, 32, 32, 3]), tfvgg.ParamStore(), keep_prob=keep_prob)


def test_dropout_active_below_one(rng):
    images = random_images(rng, (2, 32, 32, 3))
    p = tfvgg.ParamStore()
    a = tfvgg.inference_op(images, p, keep_prob=1.0, config="A")[2]
    b = tfvgg.inference_op(images, p, keep_prob=1.0, config="A")[2]
    c = tfvgg.inference_op(images, p, keep_prob=0.5, config="A")[2]
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.allclose(a.numpy(), c.numpy())


def test_convenience_names(rng):
    images = random_images(rng, (1, 32, 32, 3))
    for fn, config in [(tfvgg.vgg11, "A"), (tfvgg.vgg13, "B"), (tfvgg.vgg16, "D"), (tfvgg.vgg19, "E")]:
        p = tfvgg.ParamStore()
        fn(images, p, num_classes=5)
        assert p.count_params() == tfvgg.summary(config, (32, 32, 3), num_classes=5, print_fn=None).total_params
