"""What a training run leaves to look at: metrics.csv, TensorBoard events, PNG curves, the confusion matrix.

Every file is written atomically. TensorBoard gets one run per split
(``tensorboard/train``, ``tensorboard/validation``, ``tensorboard/test``) under the same tags
(``loss``, ``accuracy``), so the two curves overlay in one chart.
"""
import csv
import hashlib
import io
import os

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from tfvgg.util import atomic_open, atomic_write

METRIC_FIELDS = ("epoch", "step", "train_loss", "train_accuracy", "validation_loss", "validation_accuracy",
                 "test_loss", "test_accuracy", "learning_rate", "seconds", "images_per_sec")
SPLITS = ("train", "validation", "test")


def read_metrics(model_dir, completed_epochs):
    """The rows of ``model_dir/metrics.csv`` for epochs up to ``completed_epochs`` ([] without the file)."""
    path = os.path.join(model_dir, "metrics.csv")
    if not os.path.exists(path):
        return []
    with open(path, newline="", encoding="utf-8") as f:
        rows = [{k: (int(v) if k in ("epoch", "step") else float(v)) for k, v in r.items()} for r in csv.DictReader(f)]
    return [r for r in rows if r["epoch"] <= completed_epochs]


def write_metrics(model_dir, history):
    """``metrics.csv``: one row per epoch, the columns of ``METRIC_FIELDS``."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=METRIC_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write(os.path.join(model_dir, "metrics.csv"), out.getvalue())


class TensorBoardLog:
    """Scalar events in ``directory/<split>``; no tensorboard package needed to write them."""

    def __init__(self, directory):
        self.directory = directory
        self.writers = {split: tf.summary.create_file_writer(os.path.join(directory, split)) for split in SPLITS}

    def step_loss(self, step, loss):
        """The training loss of one step (tag ``step_loss`` in the train run)."""
        with self.writers["train"].as_default(step=step):
            write_scalar("step_loss", loss)

    def epoch(self, row):
        """An epoch's row of metrics.csv: loss and accuracy per split, learning rate and speed in train."""
        for split in SPLITS:
            if np.isnan(row[f"{split}_loss"]):   # a set without that split
                continue
            with self.writers[split].as_default(step=row["step"]):
                write_scalar("loss", row[f"{split}_loss"])
                write_scalar("accuracy", row[f"{split}_accuracy"])
                if split == "train":
                    write_scalar("learning_rate", row["learning_rate"])
                    write_scalar("images_per_sec", row["images_per_sec"])
        for writer in self.writers.values():
            writer.flush()


def write_scalar(tag, value):
    """A scalar event TensorBoard's Scalars tab shows; needs no tensorboard package (``tf.summary.write``)."""
    metadata = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
                                           data_class=summary_pb2.DATA_CLASS_SCALAR)
    return tf.summary.write(tag, tf.constant(value, tf.float32), metadata=metadata.SerializeToString())


def plot_history(model_dir, history):
    """loss.png and accuracy.png (each split per epoch); [] without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    epochs = [r["epoch"] for r in history]
    paths = []
    for metric in ("loss", "accuracy"):
        fig, ax = plt.subplots(figsize=(6, 4))
        for split in SPLITS:
            ax.plot(epochs, [r[f"{split}_{metric}"] for r in history], marker="o", label=split)
        ax.set(xlabel="epoch", ylabel=metric, title=f"{metric} per epoch")
        ax.grid(True, alpha=0.3)
        ax.legend()
        path = os.path.join(model_dir, f"{metric}.png")
        with atomic_open(path, "wb") as f:
            fig.savefig(f, format="png", dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def confusion_matrix(labels, predictions, num_classes):
    """``[true, predicted]`` counts, ``[num_classes, num_classes]`` int."""
    return np.bincount(np.asarray(labels) * num_classes + np.asarray(predictions),
                       minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def format_confusion(matrix, class_names):
    """The matrix as aligned text, class names as row and column headers."""
    width = max(5, max(len(str(n)) for n in class_names) + 1, len(str(matrix.max())) + 1)
    header = " " * width + "".join(f"{str(n)[:width - 1]:>{width}}" for n in class_names)
    rows = [f"{str(n)[:width - 1]:>{width}}" + "".join(f"{c:>{width}}" for c in row)
            for n, row in zip(class_names, matrix)]
    return "\n".join([header] + rows)


def write_confusion(model_dir, matrix, class_names):
    """``confusion_matrix.csv``: a header of predicted classes, one row per true class."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["true\\predicted", *class_names])
    for name, row in zip(class_names, matrix):
        writer.writerow([name, *row.tolist()])
    atomic_write(os.path.join(model_dir, "confusion_matrix.csv"), out.getvalue())


def weights_checksum(p):
    """A hex digest of every variable's bytes: equal digests mean identical weights (across workers or runs)."""
    digest = hashlib.sha256()
    for variable in p.params:
        digest.update(np.ascontiguousarray(variable.numpy()).tobytes())
    return digest.hexdigest()[:16]
