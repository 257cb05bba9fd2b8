"""TFRecord shards in the ImageNet layout of TensorFlow's ``build_imagenet_data.py`` (tf_cnn_benchmarks, TF-slim).

Shards ``DIR/train-00000-of-01024`` ... and ``DIR/validation-00000-of-00128`` ...; each record a
``tf.train.Example`` with ``image/encoded`` (JPEG bytes), ``image/class/label`` (int64, 1-based: 0 is that
script's background class), ``image/class/synset``, ``image/class/text``, ``image/height``, ``image/width``,
``image/channels``, ``image/colorspace``, ``image/format`` and ``image/filename``. Labels come out 0-based.
"""
import contextlib
import os
import re
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

ENCODED, LABEL, SYNSET, TEXT = "image/encoded", "image/class/label", "image/class/synset", "image/class/text"
# What training reads of a record; the rest of a record is optional.
RECORD_FEATURES = {ENCODED: tf.io.FixedLenFeature([], tf.string), LABEL: tf.io.FixedLenFeature([], tf.int64)}
# What a scan reads: the small features only (a missing synset or text reads as "").
INFO_FEATURES = {LABEL: tf.io.FixedLenFeature([], tf.int64), SYNSET: tf.io.FixedLenFeature([], tf.string, b""),
                 TEXT: tf.io.FixedLenFeature([], tf.string, b"")}
SCAN_BATCH = 256   # records parsed at once by scan_shards


def shard_name(split, index, total):
    """``("train", 3, 1024)`` -> ``"train-00003-of-01024"``."""
    return f"{split}-{index:05d}-of-{total:05d}"


def make_example(encoded_jpeg, label, synset, text, height, width, filename):
    """One record: JPEG bytes of a ``height`` x ``width`` RGB image, ``label`` 1-based; str or bytes for the rest."""
    def as_bytes(value):
        return value.encode("utf-8") if isinstance(value, str) else bytes(value)

    def feature(value):
        if isinstance(value, int):
            return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[as_bytes(value)]))
    values = {"image/height": int(height), "image/width": int(width), "image/colorspace": "RGB", "image/channels": 3,
              LABEL: int(label), SYNSET: synset, TEXT: text, "image/format": "JPEG", "image/filename": filename,
              ENCODED: encoded_jpeg}
    return tf.train.Example(features=tf.train.Features(feature={k: feature(v) for k, v in values.items()}))


def parse_record(serialized):
    """A serialized record (string scalar, graph or eager) -> (encoded image: string scalar, label: int64 0-based)."""
    features = tf.io.parse_single_example(serialized, RECORD_FEATURES)
    return features[ENCODED], features[LABEL] - 1


def list_shards(data_dir, split):
    """Sorted paths of ``data_dir``'s ``{split}-NNNNN-of-MMMMM`` shards, checked to be a complete set."""
    data_dir = os.path.expanduser(data_dir)
    pattern = re.compile(rf"{re.escape(split)}-(\d{{5,}})-of-(\d{{5,}})")
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"TFRecord folder not found: {data_dir}")
    found = sorted(name for name in os.listdir(data_dir) if pattern.fullmatch(name))
    if not found:
        raise FileNotFoundError(f"no {split} shards in {data_dir}: expected {split}-NNNNN-of-MMMMM files "
                                f"(e.g. {shard_name(split, 0, 8)}; python -m tfvgg.data.to_tfrecords makes them)")
    numbers = [tuple(int(g) for g in pattern.fullmatch(name).groups()) for name in found]
    totals = sorted({total for _, total in numbers})
    if len(totals) > 1:
        examples = [next(n for n, (_, t) in zip(found, numbers) if t == total) for total in totals]
        raise ValueError(f"{data_dir}: {split} shards of {len(totals)} different sets ({', '.join(examples)}); "
                         f"keep one set")
    missing = sorted(set(range(totals[0])) - {index for index, _ in numbers})
    if missing:
        raise ValueError(f"{data_dir}: {split} shards incomplete: {shard_name(split, missing[0], totals[0])} missing "
                         f"({len(found)} of {totals[0]} present)")
    if len(found) > totals[0]:
        raise ValueError(f"{data_dir}: {found[-1]}: shard number beyond the set's {totals[0]}")
    return [os.path.join(data_dir, name) for name in found]


@dataclass
class ShardInfo:
    """``counts``: records per shard, in the order scanned; ``class_texts``: 0-based label -> (synset, text)."""
    counts: list
    class_texts: dict


def scan_shards(paths):
    """Count the records of each shard and collect each label's synset and text, reading the small features only.

    Memory stays flat whatever the record count. ValueError ``"PATH record K: ..."`` for a truncated or corrupt
    record, a record without a label, or a label below 1.
    """
    info = ShardInfo([], {})
    for path in paths:
        info.counts.append(_scan_shard(path, info.class_texts))
    return info


def _scan_shard(path, class_texts):
    """Records in one shard; new labels' (synset, text) added to ``class_texts``."""
    ds = (tf.data.TFRecordDataset(path).batch(SCAN_BATCH).map(lambda batch: tf.io.parse_example(batch, INFO_FEATURES))
          .prefetch(2))
    count = 0
    try:
        for batch in ds:
            labels = batch[LABEL].numpy()
            if labels.min() < 1:
                raise ValueError(f"{path} record {count + int(np.argmax(labels < 1))}: label {labels.min()}; labels "
                                 f"are 1-based (0 is build_imagenet_data.py's background class)")
            values, first = np.unique(labels, return_index=True)
            for label, i in zip(values, first):
                if label - 1 not in class_texts:
                    class_texts[int(label) - 1] = (batch[SYNSET][i].numpy().decode("utf-8", "replace"),
                                                   batch[TEXT][i].numpy().decode("utf-8", "replace"))
            count += len(labels)
    except tf.errors.OpError as e:
        where = locate_bad_record([path], decode=False) or f"{path} record {count}+: unreadable batch"
        raise ValueError(f"{where} ({error_line(e)})") from None
    return count


def locate_bad_record(paths, decode=True):
    """One line naming the first bad record of ``paths`` (``"PATH record K: why"``, K 0-based), or None.

    Walks every record eagerly (slow: for after the fast pipeline failed). ``decode``: also decode each image.
    """
    for path in paths:
        k = 0
        try:
            for record in tf.data.TFRecordDataset(path):
                problem = _record_problem(record.numpy(), decode)
                if problem:
                    return f"{path} record {k}: {problem}"
                k += 1
        except tf.errors.NotFoundError:
            return f"{path}: shard not found"
        except tf.errors.OpError:
            return f"{path} record {k}: truncated or corrupt record"
    return None


def _record_problem(serialized, decode):
    """What is wrong with one serialized record (a short phrase), or None."""
    try:
        features = tf.train.Example.FromString(serialized).features.feature
    except Exception:   # protobuf's DecodeError, whose module differs between protobuf implementations
        return "not a tf.train.Example"
    if not features[ENCODED].bytes_list.value:
        return f"no {ENCODED} feature"
    if not features[LABEL].int64_list.value:
        return f"no {LABEL} feature"
    if features[LABEL].int64_list.value[0] < 1:
        return f"label {features[LABEL].int64_list.value[0]} (labels are 1-based)"
    if decode:
        try:
            tf.io.decode_image(features[ENCODED].bytes_list.value[0], channels=3, expand_animations=False)
        except tf.errors.InvalidArgumentError as e:
            return f"not a decodable JPEG ({error_line(e)})"
    return None


def write_shard(path, examples):
    """Write ``examples`` (``tf.train.Example``s) to the shard ``path`` atomically; returns how many were written.

    Written as ``PATH.tmp-<pid>``, synced and renamed over ``path``: a reader sees no shard or the whole shard.
    """
    tmp = f"{path}.tmp-{os.getpid()}"
    count = 0
    try:
        with tf.io.TFRecordWriter(tmp) as writer:
            for example in examples:
                writer.write(example.SerializeToString())
                count += 1
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
    return count


def write_shards(data_dir, split, examples_per_shard):
    """Shards ``{split}-00000-of-N`` ... in ``data_dir``, one per iterable of ``examples_per_shard`` (a list of N
    iterables), each atomically; returns the records written to each."""
    total = len(examples_per_shard)
    return [write_shard(os.path.join(data_dir, shard_name(split, i, total)), examples)
            for i, examples in enumerate(examples_per_shard)]


def error_line(error):
    """A TensorFlow error's message as one line, without the ``{{function_node ...}}`` and ``[Op:...]`` wrapping."""
    line = (error.message.strip().splitlines() or [type(error).__name__])[0]
    return re.sub(r"^\{\{function_node [^}]*\}\}\s*|\s*\[Op:[^\]]*\].*$", "", line) or line
