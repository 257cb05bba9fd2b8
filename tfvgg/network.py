"""One builder that walks a network's layer specs with the primitives."""
import tensorflow as tf

from tfvgg import configs, winograd
from tfvgg.ops import (check_keep_prob, conv_op, dropout_op, fc_op, flatten_op, lrn_op, mpool_op,
                       DATA_FORMATS)
from tfvgg.util import format_shape


POOLINGS = (None, "avg", "max")


def inference_op(images, p, keep_prob=1.0, config="D", num_classes=None, *, include_top=True, pooling=None,
                 return_endpoints=False, data_format="NHWC", dtype=None, dropout_seed=None, conv_algorithm="direct",
                 check_finite=False):
    """Build network ``config`` on ``images``; returns ``(predictions, softmax, logits)``.

    Args:
      images: ``[N, H, W, C]`` float (``[N, C, H, W]`` with ``data_format="NCHW"``).
        Any H, W, C: the first call creates the variables for that shape.
      p: a ``tfvgg.ParamStore``; its variables are created on the first call.
      keep_prob: dropout keep probability in (0, 1]; 1.0 for inference.
      config: a name from ``tfvgg.network_names()`` ("A", "A-LRN", "B", "C", "D",
        "E", "vgg11".."vgg19", "vgg11_small", "alexnet", "lenet") or a ``Network``.
      num_classes: width of the last layer; None = the store's existing last
        layer, else the network's default (1000 for the ImageNet networks).
      dtype: compute dtype ("float32", "bfloat16", "float16"); None = images' dtype.
      include_top: False stops before flatten (no fully connected layers, so any
        image size works) and returns the features instead of the triple.
      pooling: with include_top=False, None keeps the last pool's
        ``[N, h, w, C]``; "avg" or "max" pools it globally to ``[N, C]``.
      conv_algorithm: "direct", "winograd2", "winograd4", "winograd6" or "auto" (measured
        per layer, ``tfvgg.autotune``) for the 3x3 stride-1 convolutions (see ``conv_op``);
        others always run direct.
      check_finite: refuse images holding NaN or infinite values, naming them (ValueError when run eagerly,
        InvalidArgumentError inside a graph). Off by default: without it such an image can give an
        ordinary-looking prediction, because max-pooling drops NaN.
      return_endpoints: also return ``{layer name: activation}`` for every layer
        (``conv1_1`` ... ``pool5``, ``fc6``, ``fc7``, ``fc8``), in order.

    Returns:
      include_top=True: predictions ``[N]`` int64 (argmax), softmax
      ``[N, num_classes]`` float32, logits ``[N, num_classes]`` float32 (the last
      layer, without ReLU); include_top=False: the float32 features.
      With return_endpoints, the endpoints dict is appended (a pair for features).
    """
    net = configs.get_network(config)
    check_keep_prob(keep_prob)
    images = _checked_images(net, images, data_format, dtype)
    if check_finite:
        images = check_finite_images(images, net.name)
    if pooling not in POOLINGS or (pooling and include_top):
        raise ValueError(f"pooling must be None, 'avg' or 'max', and only with include_top=False; got {pooling!r}")
    image_hwc = _hwc(images.shape[1:], data_format)
    p.remember_shape("images", image_hwc)

    if num_classes is None:  # a store built or loaded before knows its class count
        classifier = p.get(f"{net.classifier_name}/w")
        num_classes = None if classifier is None else int(classifier.shape[1])
    layers = net.with_classes(num_classes) if include_top else net.feature_layers(num_classes)
    x, endpoints = _apply_layers(net.name, layers, images, p, image_hwc, keep_prob=keep_prob, data_format=data_format,
                                 conv_algorithm=conv_algorithm, dropout_seed=dropout_seed)

    if not include_top:
        features = _pooled_features(x, pooling, data_format)
        return (features, endpoints) if return_endpoints else features
    logits = tf.cast(x, tf.float32)
    softmax = tf.nn.softmax(logits)
    predictions = tf.argmax(softmax, axis=1)
    return (predictions, softmax, logits, endpoints) if return_endpoints else (predictions, softmax, logits)


def _apply_layers(net_name, layers, x, p, image_hwc, *, keep_prob, data_format, conv_algorithm, dropout_seed):
    """Walk the layer specs in order on ``x``; returns the last activation and ``{layer name: activation}``."""
    previous, endpoints = None, {}
    for layer in layers:
        if isinstance(layer, configs.Conv):
            fits = winograd.supports(layer.kernel, layer.kernel, layer.stride, layer.stride, layer.padding)
            x = conv_op(x, layer.name, layer.kernel, layer.kernel, layer.channels, layer.stride, layer.stride, p,
                        padding=layer.padding, data_format=data_format,
                        algorithm=conv_algorithm if fits else "direct")
        elif isinstance(layer, configs.Pool):
            x = mpool_op(x, layer.name, layer.kernel, layer.kernel, layer.stride, layer.stride,
                         padding=layer.padding, data_format=data_format)
        elif isinstance(layer, configs.LRN):
            x = lrn_op(x, layer.name, data_format=data_format)
        elif isinstance(layer, configs.Flatten):
            before_flatten = _hwc(x.shape[1:], data_format)
            p.remember_shape(layer.name, before_flatten)
            x = flatten_op(x, layer.name, data_format=data_format)
        elif isinstance(layer, configs.FC):
            if isinstance(previous, configs.Flatten):
                _check_flat_size(p, layer.name, previous.name, before_flatten, image_hwc)
            x = fc_op(x, layer.name, layer.units, p, relu=layer.relu)
        elif isinstance(layer, configs.Dropout):
            x = dropout_op(x, layer.name, keep_prob, seed=dropout_seed)
        else:
            raise TypeError(f"{net_name}: unknown layer spec {layer!r}")
        endpoints[layer.name] = x
        previous = layer
    return x, endpoints


def vgg11(images, p, keep_prob=1.0, num_classes=None, **kwargs):
    """VGG-11 (configuration A)."""
    return inference_op(images, p, keep_prob, "A", num_classes, **kwargs)


def vgg13(images, p, keep_prob=1.0, num_classes=None, **kwargs):
    """VGG-13 (configuration B)."""
    return inference_op(images, p, keep_prob, "B", num_classes, **kwargs)


def vgg16(images, p, keep_prob=1.0, num_classes=None, **kwargs):
    """VGG-16 (configuration D)."""
    return inference_op(images, p, keep_prob, "D", num_classes, **kwargs)


def vgg19(images, p, keep_prob=1.0, num_classes=None, **kwargs):
    """VGG-19 (configuration E)."""
    return inference_op(images, p, keep_prob, "E", num_classes, **kwargs)


def _checked_images(net, images, data_format, dtype):
    """``images`` as a float tensor of rank 4 in the compute dtype; ValueError/TypeError naming the network."""
    if data_format not in DATA_FORMATS:
        raise ValueError(f"data_format must be one of {', '.join(DATA_FORMATS)}; got {data_format!r}")
    images = tf.convert_to_tensor(images)
    if images.shape.rank != 4:
        layout = "[N, H, W, C]" if data_format == "NHWC" else "[N, C, H, W]"
        raise ValueError(f"{net.name} expects images of rank 4 ({layout}); got shape {images.shape}")
    if not images.dtype.is_floating:
        raise TypeError(f"{net.name} expects float images; got {images.dtype.name} (cast and scale them first)")
    return images if dtype is None else tf.cast(images, dtype)


def check_finite_images(images, where="images"):
    """``images`` ``[N, ...]`` unchanged if every value is finite; else an error naming the images (their index
    in the batch) that are not: ValueError in eager mode, InvalidArgumentError from an assertion in a graph."""
    finite = tf.reduce_all(tf.math.is_finite(tf.reshape(images, [tf.shape(images)[0], -1])), axis=1)
    bad = tf.reshape(tf.where(tf.logical_not(finite)), [-1])
    message = f"{where}: NaN or infinite pixel values in image(s) (index in the batch)"
    if tf.executing_eagerly():
        if bad.shape[0]:
            raise ValueError(f"{message}: {', '.join(str(int(i)) for i in bad.numpy()[:10])}")
        return images
    with tf.control_dependencies([tf.debugging.Assert(tf.reduce_all(finite), [message, bad], summarize=10)]):
        return tf.identity(images)


def _pooled_features(x, pooling, data_format):
    """The last feature map as float32, pooled over H and W to ``[N, C]`` with "avg" or "max"."""
    spatial_axes = (1, 2) if data_format == "NHWC" else (2, 3)
    if pooling == "avg":
        x = tf.reduce_mean(x, axis=spatial_axes)
    elif pooling == "max":
        x = tf.reduce_max(x, axis=spatial_axes)
    return tf.cast(x, tf.float32)


def _hwc(shape, data_format):
    dims = tuple(shape)
    return dims if data_format == "NHWC" else (dims[1], dims[2], dims[0])


def _check_flat_size(p, fc_name, flatten_name, before_flatten, image_hwc):
    """The first FC after flatten fixes the image size; say which one if it changed."""
    kernel = p.get(f"{fc_name}/w")
    got = before_flatten[0] * before_flatten[1] * before_flatten[2]
    if kernel is None or kernel.shape[0] == got:
        return
    built = p.built_shapes.get(flatten_name)
    built_images = p.built_shapes.get("images")
    was = f" ({format_shape(built)}, images of {format_shape(built_images[:2])})" if built and built_images else ""
    raise ValueError(f"{fc_name} expects {kernel.shape[0]} inputs{was}; got {got} "
                     f"({format_shape(before_flatten)}, images of {format_shape(image_hwc[:2])})")

