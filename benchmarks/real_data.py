"""The benchmark fed by real data (``--data_dir``), as tf_cnn_benchmarks had: TFRecord shards in the ImageNet
layout through tfvgg's input pipeline, the paper's training augmentation included.

tfvgg is timed fed by the pipeline, next to itself on synthetic images (the
``synthetic`` contestant), interleaved; the pipeline is also timed alone. A
pass is input-bound when the pipeline alone delivers fewer images per second
than the pass consumes on synthetic images; a fed pass below ``SLOWED_RATIO``
of the synthetic one with a fast enough pipeline is reported as slowed by
feeding (the pipeline's threads compete for the same cores).
"""
import time

import tensorflow as tf

from tfvgg.data.augment import Augmentation
from tfvgg.data.pipeline import Preprocessing, batches
from tfvgg.data.sources import RecordSource

SLOWED_RATIO = 0.9
PIPELINE_WARMUP, PIPELINE_BATCHES = 3, 20


def image_batches(data_dir, workload, seed=0, augment=True):
    """(an endless ``tf.data.Dataset`` of float32 image batches in ``workload``'s shape and layout, the source)
    from the training shards in ``data_dir``, minus the RGB mean: augmented as in training (S = 256 for a 224
    crop, scaled), or with ``augment=False`` only the evaluation's shorter side to Q and centre crop."""
    source = RecordSource(data_dir, validation_fraction=0.0, seed=seed)
    prep = Preprocessing(workload.image_size, workload.channels, Augmentation(workload.image_size, (256,)),
                         "rgb_mean" if workload.channels == 3 else "unit")
    ds = batches(source, "train", workload.batch_size, prep, shuffle_seed=seed if augment else None,
                 drop_remainder=True).repeat()   # the batch size in the static shape, as synthetic images have it
    if workload.data_format == "NCHW":
        return ds.map(lambda images, _: tf.transpose(images, [0, 3, 1, 2])), source
    return ds.map(lambda images, _: images), source


def pipeline_rate(dataset, batch_size, batches_timed=PIPELINE_BATCHES, warmup=PIPELINE_WARMUP):
    """Images per second the pipeline delivers alone (nothing else running), after ``warmup`` batches."""
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches_timed):
        next(iterator)
    return batches_timed * batch_size / (time.perf_counter() - start)


def input_record(out, pipeline_images_per_sec, plain_images_per_sec, passes, data_dir, source):
    """``out["input"]``: the pipeline's own rate (with the augmentation that fed the passes, and without) and,
    per pass, the fed/synthetic ratio and whether it is input-bound; returns the lines the report prints."""
    record = {"data_dir": data_dir, "train_images": source.size("train"),
              "pipeline_images_per_sec": pipeline_images_per_sec,
              "pipeline_without_augmentation_images_per_sec": plain_images_per_sec, "passes": {}}
    lines = [f"Input pipeline alone: {pipeline_images_per_sec:.1f} images/s with the training augmentation, "
             f"{plain_images_per_sec:.1f} without (centre crop) ({record['train_images']:,} training images in "
             f"{data_dir})"]
    for pass_name in passes:
        synthetic = out.get("compare", {}).get("synthetic", {}).get(pass_name)
        if pass_name not in out or synthetic is None:
            continue
        consumed = synthetic["images_per_sec"]
        ratio = out[pass_name]["images_per_sec"] / consumed
        bound = pipeline_images_per_sec < consumed
        record["passes"][pass_name] = {"fed_vs_synthetic": ratio, "input_bound": bound}
        verdict = ("input-bound" if bound else "not input-bound" if ratio >= SLOWED_RATIO
                   else "not input-bound, but slowed by feeding (the pipeline competes for the cores)")
        lines.append(f"  {pass_name}: fed by the pipeline at {ratio:.2f}x synthetic; the pipeline delivers "
                     f"{pipeline_images_per_sec / consumed:.1f}x what the pass consumes: {verdict}")
    out["input"] = record
    return lines
