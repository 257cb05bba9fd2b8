"""Convert a folder of images into TFRecord shards in the ImageNet layout (``records``), as build_imagenet_data.py.

    python -m tfvgg.data.to_tfrecords --input_dir=~/flowers --output_dir=~/flowers_records
    python -m tfvgg.data.to_tfrecords --input_dir=~/imagenet --output_dir=~/imagenet_records \\
        --train_shards=1024 --validation_shards=128 --labels_file=~/imagenet/LOC_synset_mapping.txt

The folder is in either layout of ``folders.index_image_folder``: ``DIR/train/<class>/`` (with ``validation/``
or ``val/``, and ``test/``, where present), or ``DIR/<class>/``, ``--validation_fraction`` of each class then held
out. Labels are 1-based in sorted class order; the synset is the class folder's name, the text its line in
``--labels_file`` (``synset text``, as ImageNet's synset list) or the name again. Colour JPEGs are copied byte for
byte; other images (PNG, GIF, BMP, grey or CMYK JPEGs) become RGB JPEGs. Each split's records are shuffled by
``--seed`` and spread evenly over its shards; ``OUT/labels.txt`` lists ``synset<TAB>text`` in label order.
"""
import contextlib
import itertools
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from absl import flags
import numpy as np
import tensorflow as tf

from tfvgg import cli
from tfvgg.cli import fail
from tfvgg.data import folders, records
from tfvgg.util import atomic_write

JPEG_QUALITY = 95
DECODE_CHUNK = 64   # images decoded ahead by the worker threads (bounds the memory in flight)
SHARD_PATTERN = re.compile(r"(train|validation|test)-\d{5,}-of-\d{5,}")


@dataclass
class SplitResult:
    """One split's shards (paths), records written to each, and the undecodable files left out."""
    shards: list
    counts: list
    skipped: list


@dataclass
class Conversion:
    """What ``convert`` wrote: ``classes`` (synset, text) in label order; ``splits`` name -> ``SplitResult``."""
    output_dir: str
    classes: list
    splits: dict


def read_labels_file(path):
    """``synset<TAB>text`` or ``synset text`` lines (ImageNet's synset list, or a ``labels.txt``) -> {synset: text}."""
    path = os.path.expanduser(path)
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise FileNotFoundError(f"labels file not found: {path}") from None
    texts = {}
    for line in lines:
        synset, _, text = line.strip().partition("\t") if "\t" in line else line.strip().partition(" ")
        if synset:
            texts[synset.strip()] = text.strip()
    return texts


def class_rows(class_names, labels_file=None):
    """(synset, text) per class in label order: the folder name, and its text from ``labels_file`` or the name."""
    if labels_file is None:
        return [(name, name) for name in class_names]
    texts = read_labels_file(labels_file)
    missing = [name for name in class_names if name not in texts]
    if missing:
        raise ValueError(f"{labels_file}: no line for class {missing[0]} ({len(missing)} of {len(class_names)} "
                         f"classes missing)")
    return [(name, texts[name] or name) for name in class_names]


def rgb_jpeg(path):
    """An image file -> (RGB JPEG bytes, height, width in pixels); ValueError naming the file if it does not decode.

    A colour JPEG keeps its own bytes (decoded once to check all of it); anything else is decoded to RGB and
    encoded at ``JPEG_QUALITY``.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ValueError(f"{path}: unreadable ({e.strerror})") from None
    try:
        if tf.io.is_jpeg(data) and int(tf.io.extract_jpeg_shape(data)[2]) == 3:
            height, width, _ = tf.io.decode_jpeg(data).shape
            return data, int(height), int(width)
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
    except tf.errors.OpError as e:
        raise ValueError(f"{path}: not a decodable image ({records.error_line(e)})") from None
    return tf.io.encode_jpeg(image, quality=JPEG_QUALITY).numpy(), int(image.shape[0]), int(image.shape[1])


def _rgb_jpeg_or_error(path):
    try:
        return rgb_jpeg(path)
    except ValueError as e:
        return e


def _prepared(paths, workers):
    """``rgb_jpeg`` of each path in order (the ValueError in place of a bad one), ``workers`` threads decoding."""
    with ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:
        for start in range(0, len(paths), DECODE_CHUNK):
            yield from pool.map(_rgb_jpeg_or_error, paths[start:start + DECODE_CHUNK])


def existing_shards(output_dir):
    """Names of the shards (any split) already in ``output_dir``, sorted; [] if it does not exist."""
    if not os.path.isdir(output_dir):
        return []
    return sorted(name for name in os.listdir(output_dir) if SHARD_PATTERN.fullmatch(name))


def convert(input_dir, output_dir, train_shards=8, validation_shards=2, test_shards=1, validation_fraction=0.1,
            seed=0, labels_file=None, skip_bad_images=False, workers=None):
    """Write the image folder ``input_dir`` as shards in ``output_dir`` (which must hold none yet) -> ``Conversion``.

    Splits with no images get no shards. On an error (or Ctrl-C) the shards written so far are removed.
    """
    input_dir, output_dir = os.path.expanduser(input_dir), os.path.expanduser(output_dir)
    held = existing_shards(output_dir)
    if held:
        raise FileExistsError(f"{output_dir} already holds shards ({held[0]} and {len(held) - 1} more); choose a new "
                              f"--output_dir or remove them")
    index = folders.index_image_folder(input_dir, validation_fraction, seed=seed)
    classes = class_rows(index.class_names, labels_file)
    os.makedirs(output_dir, exist_ok=True)
    num_shards = {"train": train_shards, "validation": validation_shards, "test": test_shards}
    rng = np.random.default_rng(seed)
    done = Conversion(output_dir, classes, {})
    try:
        for split, items in index.splits.items():
            if items:
                shuffled = [items[i] for i in rng.permutation(len(items))]
                done.splits[split] = _write_split(shuffled, output_dir, split, num_shards[split], classes,
                                                  skip_bad_images, workers)
    except BaseException:
        for name in existing_shards(output_dir):
            os.remove(os.path.join(output_dir, name))
        raise
    atomic_write(os.path.join(output_dir, "labels.txt"), "".join(f"{s}\t{t}\n" for s, t in classes))
    return done


def _write_split(items, output_dir, split, num_shards, classes, skip_bad_images, workers):
    """``items`` (path, 0-based label), in the order to write them, as ``num_shards`` shards of near-equal size."""
    num_shards = max(1, min(num_shards, len(items)))
    bounds = np.linspace(0, len(items), num_shards + 1).astype(int)
    result = SplitResult([os.path.join(output_dir, records.shard_name(split, i, num_shards))
                          for i in range(num_shards)], [], [])
    with contextlib.closing(_prepared([path for path, _ in items], workers)) as prepared:
        def examples(lo, hi):
            for (path, label), image in zip(items[lo:hi], itertools.islice(prepared, hi - lo)):
                if isinstance(image, ValueError):
                    if not skip_bad_images:
                        raise ValueError(f"{image}; --skip_bad_images leaves such files out")
                    result.skipped.append(path)
                    continue
                encoded, height, width = image
                synset, text = classes[label]
                yield records.make_example(encoded, label + 1, synset, text, height, width, os.path.basename(path))
        result.counts = records.write_shards(output_dir, split, [examples(lo, hi)
                                                                 for lo, hi in zip(bounds[:-1], bounds[1:])])
    return result


def summary_lines(done):
    """One line per split written, then the labels file and any files left out."""
    lines = [f"{split}: {_count(sum(r.counts), 'image')} in {_count(len(r.shards), 'shard')} "
             f"({os.path.basename(r.shards[0])} ...)" + (f"; skipped {len(r.skipped)} undecodable" if r.skipped else "")
             for split, r in done.splits.items()]
    lines.append(f"{len(done.classes)} classes: {os.path.join(done.output_dir, 'labels.txt')}")
    skipped = [path for r in done.splits.values() for path in r.skipped]
    if skipped:
        lines.append(f"Skipped {_count(len(skipped), 'undecodable image')}: {', '.join(skipped[:5])}"
                     f"{' ...' if len(skipped) > 5 else ''}")
    return lines


def _count(n, noun):
    return f"{n:,} {noun}{'s' * (n != 1)}"


def define_flags():
    cli.FlagSpec("path", "The image folder: DIR/train/<class>/*.jpg [+ validation/ (or val/), test/], or "
                         "DIR/<class>/*.jpg.").define("input_dir", None, required=True)
    cli.FlagSpec("path", "Where to write the shards and labels.txt (must hold no shards yet).").define(
        "output_dir", None, required=True)
    for split, default in (("train", 8), ("validation", 2), ("test", 1)):
        cli.FlagSpec("integer", f"Shards of the {split} split (fewer if it has fewer images).", lower=1).define(
            f"{split}_shards", default)
    cli.FlagSpec("float", "Without a validation/ folder: the part of each class held out for validation.",
                 lower=0.0, upper=0.9).define("validation_fraction", 0.1)
    cli.FlagSpec("integer", "Seed of the validation hold-out and of the record order.").define("seed", 0)
    cli.FlagSpec("path", "Class texts: lines 'synset<TAB or space>text' (ImageNet's synset list); "
                         "unset: the folder names.").define("labels_file", None)
    cli.FlagSpec("boolean", "Leave undecodable images out (counted at the end) instead of stopping.").define(
        "skip_bad_images", False)
    cli.FlagSpec("integer", "Threads decoding images (0: one per CPU core).", lower=0).define("num_threads", 0)


def main(argv):
    cli.no_positional_arguments(argv)
    f = flags.FLAGS
    try:
        done = convert(f.input_dir, f.output_dir, f.train_shards, f.validation_shards, f.test_shards,
                       f.validation_fraction, f.seed, f.labels_file, f.skip_bad_images, f.num_threads or None)
    except (ValueError, OSError) as e:   # OSError: FileNotFoundError, FileExistsError, a folder not writable
        fail(e, argv)
    for line in summary_lines(done):
        print(line)


def run():
    """``tfvgg-to-tfrecords``: the console script."""
    cli.run(main, define_flags)


if __name__ == "__main__":
    run()
