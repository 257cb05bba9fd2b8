"""Real images in, class names out: decoding, resizing, mean subtraction, ImageNet labels."""
import os

import tensorflow as tf

from tfvgg.data import augment

# Mean RGB of the ImageNet training set, subtracted by the VGG paper (section 2.1).
IMAGENET_RGB_MEAN = (123.68, 116.779, 103.939)
PREPROCESSING = ("caffe", "rgb_mean", "none")
_CLASS_FILE = os.path.join(os.path.dirname(__file__), "data", "imagenet_classes.txt")


def preprocess(images, mode="caffe", data_format="NHWC"):
    """RGB pixel values in [0, 255] -> what the network was trained on.

    ``images``: ``[..., H, W, 3]`` (NHWC) or ``[..., 3, H, W]`` (NCHW), any dtype.
    * ``"caffe"``: RGB -> BGR, then subtract the mean per channel: the published
      Caffe weights and ``keras.applications.vgg16.preprocess_input``.
    * ``"rgb_mean"``: subtract the RGB mean, the paper's convention.
    * ``"none"``: only convert to float32.
    Returns float32 of the same shape.
    """
    if mode not in PREPROCESSING:
        raise ValueError(f"preprocessing must be one of {', '.join(PREPROCESSING)}; got {mode!r}")
    x = tf.cast(images, tf.float32)
    axis = -1 if data_format == "NHWC" else -3
    if x.shape.rank is not None and x.shape.rank >= 3 and x.shape[axis] not in (None, 3):
        raise ValueError(f"preprocess expects 3 colour channels on axis {axis} ({data_format}); got shape {x.shape}")
    if mode == "none":
        return x
    mean = tf.constant(IMAGENET_RGB_MEAN, tf.float32)
    if mode == "caffe":
        x, mean = tf.reverse(x, axis=[axis]), tf.reverse(mean, axis=[0])
    if data_format == "NCHW":
        mean = tf.reshape(mean, (3, 1, 1))
    return x - mean


def load_image(path, size=224, resize_to=256):
    """A JPEG/PNG/GIF/BMP file -> ``[size, size, 3]`` float32 RGB in [0, 255].

    The shorter side is scaled to ``resize_to`` (keeping the aspect ratio), then
    the central ``size`` x ``size`` crop is taken: the paper's single-scale test, as
    ``tfvgg.data.augment.eval_image`` does it in a ``tf.data`` pipeline.
    """
    if resize_to < size:
        raise ValueError(f"resize_to ({resize_to}) must be at least size ({size})")
    return augment.central_crop(augment.resize_shorter_side(read_image(path), resize_to), size)


def read_image(path):
    """An image file -> uint8 ``[H, W, 3]`` RGB; FileNotFoundError / ValueError naming the file."""
    try:
        data = tf.io.read_file(path)
    except tf.errors.NotFoundError:
        raise FileNotFoundError(f"image not found: {path}") from None
    try:
        return tf.io.decode_image(data, channels=3, expand_animations=False)
    except tf.errors.InvalidArgumentError as e:
        raise ValueError(f"{path}: not a decodable image ({e.message.splitlines()[0]})") from None


def class_names():
    """The 1000 ImageNet class names in the order of the Keras and classic VGG weights (index = class)."""
    with open(_CLASS_FILE, encoding="utf-8") as f:
        names = [line.strip() for line in f if line.strip()]
    if len(names) != 1000:
        raise RuntimeError(f"{_CLASS_FILE} should list 1000 classes; it has {len(names)} (damaged install?)")
    return names


def decode_predictions(probabilities, top=5, names=None):
    """``[N, C]`` probabilities -> for each image, the ``top`` (class index, name, probability), best first."""
    probabilities = tf.convert_to_tensor(probabilities)
    if probabilities.shape.rank != 2:
        raise ValueError(f"decode_predictions expects [N, classes]; got shape {probabilities.shape}")
    names = class_names() if names is None else list(names)
    if probabilities.shape[1] != len(names):
        raise ValueError(f"probabilities have {probabilities.shape[1]} classes but there are {len(names)} names")
    values, indices = tf.math.top_k(probabilities, k=min(top, len(names)))
    return [[(int(i), names[int(i)], float(v)) for i, v in zip(row_i, row_v)]
            for row_i, row_v in zip(indices.numpy(), values.numpy())]
