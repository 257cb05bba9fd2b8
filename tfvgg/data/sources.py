"""Where a run's images come from, as one interface over arrays in memory, image folders and TFRecord shards.

A ``Source`` has up to three splits, "train", "validation" and "test". The
validation split drives the learning-rate plateau and the best checkpoint; the
test split is only reported. ``images(split)`` streams ``(image, label)``:
``image`` uint8 ``[H, W, C]`` (sizes may differ between images), ``label``
int64 0-based. Folder and TFRecord sources decode inside tf.data, so memory does
not grow with the number of images; the array sources hold theirs.
"""
import os

import numpy as np
import tensorflow as tf

from tfvgg.data import arrays, folders, records

SPLITS = ("train", "validation", "test")
# Decoded records waiting to be shuffled: about 150 KB each at ImageNet sizes, so ~150 MB whatever the set's size.
SHUFFLE_BUFFER = 1024
# Shards read at once; the shuffle of the shard order each epoch mixes the rest.
SHARDS_READ_AT_ONCE = 8


class Source:
    """A dataset's splits, class names and the channels of its images (1: grey digits, 3: photographs)."""
    name = "source"
    channels = 3
    photographs = True   # the paper's augmentation and mean subtraction apply by default

    def __init__(self, class_names):
        self.class_names = tuple(class_names)

    @property
    def num_classes(self):
        return len(self.class_names)

    def size(self, split):
        """Images in ``split`` (0 if the source has no such split)."""
        raise NotImplementedError

    def images(self, split, shuffle_seed=None, limit=0):
        """``tf.data.Dataset`` of (uint8 ``[H, W, C]``, int64 label); a fixed order unless ``shuffle_seed`` is set,
        and the same order for the same seed. ``limit``: only the first N images of the fixed order."""
        raise NotImplementedError

    def locate_bad(self, split):
        """One line naming the first unreadable image of ``split`` (file, and record for shards), or None."""
        return None

    def describe(self):
        sizes = ", ".join(f"{self.size(s):,} {s}" for s in SPLITS if self.size(s))
        return f"{self.name} ({sizes}; {self.num_classes} classes)"


class ArraySource(Source):
    """An ``arrays.Dataset`` in memory; the validation split is held out of its training images by a fixed seed."""
    photographs = False

    def __init__(self, dataset, validation_fraction=0.1, seed=0):
        super().__init__(dataset.class_names)
        self.name, self.channels = dataset.name, dataset.image_shape[-1]
        order = np.random.default_rng(seed + 1).permutation(len(dataset.train_images))
        n_val = int(round(len(order) * validation_fraction))
        held, kept = np.sort(order[:n_val]), np.sort(order[n_val:])
        self.splits = {"train": (dataset.train_images[kept], dataset.train_labels[kept]),
                       "validation": (dataset.train_images[held], dataset.train_labels[held]),
                       "test": (dataset.test_images, dataset.test_labels)}

    def size(self, split):
        return len(self.splits[split][1]) if split in self.splits else 0

    def labels(self, split):
        return self.splits[split][1]

    def images(self, split, shuffle_seed=None, limit=0):
        images, labels = self.splits[split]
        images, labels = (images[:limit], labels[:limit]) if limit else (images, labels)
        ds = tf.data.Dataset.from_tensor_slices((images, labels))
        if shuffle_seed is not None:
            ds = ds.shuffle(len(labels), seed=shuffle_seed, reshuffle_each_iteration=False)
        return ds


class FolderSource(Source):
    """Image files, one sub-folder per class (``folders.index_image_folder``'s layouts); decoded as they stream."""
    name = "folder"

    def __init__(self, data_dir, validation_fraction=0.1, seed=0):
        self.index = folders.index_image_folder(data_dir, validation_fraction, test_fraction=0.0, seed=seed)
        super().__init__(self.index.class_names)

    def size(self, split):
        return len(self.index.splits.get(split, ()))

    def images(self, split, shuffle_seed=None, limit=0):
        paths, labels = zip(*self.index.splits[split][:limit or None])
        ds = tf.data.Dataset.from_tensor_slices((list(paths), np.array(labels, np.int64)))
        if shuffle_seed is not None:   # paths only: a few bytes per image
            ds = ds.shuffle(len(paths), seed=shuffle_seed, reshuffle_each_iteration=False)
        return ds.map(lambda path, label: (decode(tf.io.read_file(path)), label),
                      num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def locate_bad(self, split):
        for path, _ in self.index.splits[split]:
            try:
                decode(tf.io.read_file(path))
            except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as e:
                return f"{path}: not a decodable image ({e.message.splitlines()[0]})"
        return None


class RecordSource(Source):
    """TFRecord shards in the ImageNet layout (``records``): ``train-*`` and ``validation-*`` in ``data_dir``.

    Without validation shards, ``validation_fraction`` of the training records is held out by a hash of
    (shard, record index, seed): the same records on every run, decided while streaming.
    """
    name = "imagenet"

    def __init__(self, data_dir, validation_fraction=0.1, seed=0):
        self.data_dir, self.seed, self.fraction = data_dir, seed, validation_fraction
        self.shards = {"train": records.list_shards(data_dir, "train")}
        for split in ("validation", "test"):
            try:
                self.shards[split] = records.list_shards(data_dir, split)
            except FileNotFoundError:
                pass
        self.holdout = "validation" not in self.shards and validation_fraction > 0
        info = {split: records.scan_shards(paths) for split, paths in self.shards.items()}
        self.sizes = {split: sum(i.counts) for split, i in info.items()}
        if self.holdout:
            held = sum(int(np.sum(held_out(f, np.arange(n), seed, validation_fraction)))
                       for f, n in enumerate(info["train"].counts))
            self.sizes = {**self.sizes, "train": self.sizes["train"] - held, "validation": held}
        texts = {k: v for i in info.values() for k, v in i.class_texts.items()}
        super().__init__(class_names_from_texts(texts))

    def size(self, split):
        return self.sizes.get(split, 0)

    def images(self, split, shuffle_seed=None, limit=0):
        stored = "train" if self.holdout and split == "validation" else split
        files = self.shards[stored]
        keep = {"train": False, "validation": True}.get(split) if self.holdout else None

        def read(path, file_index):
            ds = tf.data.TFRecordDataset(path)
            if keep is None:
                return ds
            ds = ds.enumerate().filter(lambda i, _: tf.equal(held_out(file_index, i, self.seed, self.fraction), keep))
            return ds.map(lambda _, record: record)

        ds = tf.data.Dataset.from_tensor_slices((files, np.arange(len(files), dtype=np.int64)))
        if shuffle_seed is not None and not limit:   # the first N records must stay the same N
            ds = ds.shuffle(len(files), seed=shuffle_seed, reshuffle_each_iteration=False)
        ds = ds.interleave(read, cycle_length=min(SHARDS_READ_AT_ONCE, len(files)), block_length=1,
                           num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        if limit:
            ds = ds.take(limit)
        if shuffle_seed is not None:   # encoded JPEGs, decoded after the shuffle
            ds = ds.shuffle(SHUFFLE_BUFFER, seed=shuffle_seed, reshuffle_each_iteration=False)

        def parse(record):
            encoded, label = records.parse_record(record)
            return decode(encoded), label
        return ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def locate_bad(self, split):
        return records.locate_bad_record(self.shards["train" if self.holdout and split == "validation" else split])


def held_out(file_index, record_index, seed, fraction):
    """Whether record ``record_index`` of shard ``file_index`` is held out for validation (NumPy or TensorFlow
    int64 in, bool out): a multiplicative hash, so the choice needs no list of the records."""
    key = (file_index * 1_000_003 + record_index + seed * 7_919) * 2_654_435_761 % 4_294_967_296
    return key < int(fraction * 4_294_967_296)


def class_names_from_texts(texts):
    """{label: (synset, text)} -> names in label order: the text, else the synset, else the label's number."""
    if not texts:
        raise ValueError("no records with a class label found")
    return tuple((texts.get(i) and (texts[i][1] or texts[i][0])) or str(i) for i in range(max(texts) + 1))


def decode(encoded):
    """JPEG/PNG/GIF/BMP bytes -> uint8 ``[H, W, 3]`` (grey images repeated to RGB)."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    return tf.ensure_shape(image, [None, None, 3])


STREAMED = {"folder": FolderSource, "imagenet": RecordSource}


def open_source(dataset, data_dir=None, seed=0, validation_fraction=0.1):
    """The ``Source`` of a ``--dataset`` name: digits, mnist, fashion_mnist (arrays), folder, imagenet (streamed)."""
    if dataset in STREAMED:
        if not data_dir:
            raise ValueError(f"--dataset={dataset} needs --data_dir")
        return STREAMED[dataset](os.path.expanduser(data_dir), validation_fraction, seed)
    return ArraySource(arrays.load_dataset(dataset, data_dir, seed=seed), validation_fraction, seed)
