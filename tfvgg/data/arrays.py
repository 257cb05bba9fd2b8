"""Datasets for training: MNIST-format IDX files, a folder of images, and the digits set scikit-learn ships.

Every loader returns a ``Dataset`` of NumPy arrays, images ``[N, H, W, C]`` uint8
(0..255) and labels ``[N]`` int64; ``to_tf_dataset`` turns one split into a
shuffled, resized, batched and prefetched ``tf.data.Dataset``.
"""
import gzip
import os
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from tfvgg.data import folders
from tfvgg.data.folders import IMAGE_EXTENSIONS  # noqa: F401 - re-exported

# IDX type codes (the third byte of the magic number) -> big-endian NumPy dtypes.
IDX_DTYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte",
}
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                         "Ankle boot")
DATASETS = ("digits", "mnist", "fashion_mnist", "folder")


@dataclass
class Dataset:
    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: tuple

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def image_shape(self):
        return tuple(self.train_images.shape[1:])


def read_idx(path):
    """An IDX file (``.gz`` or plain) -> ndarray, checking the magic number and the size."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"IDX file not found: {path}") from None
    except (OSError, EOFError) as e:
        raise ValueError(f"{path}: not a readable gzip file ({e})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_DTYPES:
        raise ValueError(f"{path}: not an IDX file (magic number {data[:4].hex() or 'missing'}; expected "
                         f"00 00 <type> <ndim>)")
    dtype, ndim = IDX_DTYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: IDX header cut short ({len(data)} bytes; {ndim} dimensions need {header})")
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(f"{path}: IDX data of {len(data)} bytes; shape {shape} of {dtype.name} needs {expected}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def load_mnist(data_dir, name="mnist"):
    """MNIST or Fashion-MNIST from the four standard IDX files (``.gz`` or not) in ``data_dir``."""
    arrays = {}
    for key, stem in MNIST_FILES.items():
        candidates = [os.path.join(data_dir, stem + ext) for ext in (".gz", "")]
        path = next((c for c in candidates if os.path.exists(c)), None)
        if path is None:
            raise FileNotFoundError(f"{name}: {stem}.gz (or {stem}) not found in {data_dir}")
        arrays[key] = read_idx(path)
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(f"{name} {split}: {images.shape} images and {labels.shape} labels do not pair up")
    classes = FASHION_MNIST_CLASSES if name == "fashion_mnist" else tuple(str(i) for i in range(10))
    return Dataset(name, arrays["train_images"][..., None], arrays["train_labels"].astype(np.int64),
                   arrays["test_images"][..., None], arrays["test_labels"].astype(np.int64), classes)


def load_image_folder(data_dir, image_size, test_fraction=0.2, seed=0):
    """One sub-folder per class (e.g. the 17-flower set); images decoded and resized to ``image_size`` now.

    Each class is split ``test_fraction`` / rest after a seeded shuffle
    (``folders.index_image_folder``), so the split is the same on every run. For
    sets too large to hold in memory, ``sources.FolderSource`` streams them.
    """
    index = folders.index_image_folder(data_dir, validation_fraction=0.0, test_fraction=test_fraction, seed=seed)
    arrays = []
    for split in ("train", "test"):
        pairs = index.splits.get(split, [])
        arrays.append(np.stack([_decode_resized(path, image_size) for path, _ in pairs]) if pairs
                      else np.zeros([0, image_size, image_size, 3], np.uint8))
        arrays.append(np.array([label for _, label in pairs], np.int64))
    return Dataset("folder", *arrays, index.class_names)


def _decode_resized(path, image_size):
    try:
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    except tf.errors.InvalidArgumentError:
        raise ValueError(f"{path}: not a decodable image") from None
    resized = tf.image.resize(image, (image_size, image_size), antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8).numpy()


def load_digits(test_fraction=0.2, seed=0):
    """scikit-learn's 1,797 handwritten digits (8x8, values 0..16 scaled to 0..255), split after a seeded shuffle."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        raise ImportError("the digits dataset ships with scikit-learn: pip install scikit-learn "
                          "(or pip install -e '.[train]')") from None
    digits = sklearn_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    labels = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(images))
    n_test = int(round(len(images) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return Dataset("digits", images[train], labels[train], images[test], labels[test],
                   tuple(str(i) for i in range(10)))


def load_dataset(name, data_dir=None, image_size=None, seed=0):
    """One of ``DATASETS`` by name."""
    if name == "digits":
        return load_digits(seed=seed)
    if name in ("mnist", "fashion_mnist"):
        if not data_dir:
            raise ValueError(f"--dataset={name} needs --data_dir with the four IDX files")
        return load_mnist(data_dir, name)
    if name == "folder":
        if not data_dir:
            raise ValueError("--dataset=folder needs --data_dir with one sub-folder per class")
        return load_image_folder(data_dir, image_size or 224, seed=seed)
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


def to_tf_dataset(images, labels, batch_size, image_size, channels, shuffle_seed=None, skip_batches=0):
    """A ``tf.data`` pipeline: (shuffle) -> resize to ``image_size`` and scale to [0, 1] -> batch -> prefetch.

    ``shuffle_seed``: None for a fixed order (evaluation); an int gives the same
    order every time it is used, so an epoch can be replayed after a resume,
    with ``skip_batches`` batches already done.
    """
    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(images), seed=shuffle_seed, reshuffle_each_iteration=False)

    def prepare(image, label):
        image = tf.image.convert_image_dtype(image, tf.float32)  # uint8 0..255 -> 0..1
        if image.shape[-1] != channels:
            image = tf.image.grayscale_to_rgb(image) if channels == 3 else tf.image.rgb_to_grayscale(image)
        if image.shape[0] != image_size or image.shape[1] != image_size:
            image = tf.image.resize(image, (image_size, image_size))
        return image, label

    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).batch(batch_size)
    if skip_batches:
        ds = ds.skip(skip_batches)
    return ds.prefetch(tf.data.AUTOTUNE)
