"""Evaluate a trained model directory: ``python -m tfvgg.evaluate --model_dir=runs/digits``.

Reads the run's ``config.json``, restores its latest checkpoint (the weights only)
and prints test loss, accuracy and the confusion matrix.
"""
import json
import os

import numpy as np
import tensorflow as tf

from tfvgg import configs
from tfvgg.checkpoint import Checkpointer
from tfvgg.data import load_dataset, to_tf_dataset
from tfvgg.network import inference_op
from tfvgg.params import ParamStore
from tfvgg.train import confusion_matrix, format_confusion


def evaluate_model_dir(model_dir, batch_size=None):
    """(test_loss, test_accuracy, confusion matrix, class names) of the latest checkpoint in ``model_dir``."""
    config_path = os.path.join(model_dir, "config.json")
    if not os.path.exists(config_path):
        raise FileNotFoundError(f"{model_dir}: no config.json; is it a tfvgg.train --model_dir?")
    with open(config_path) as f:
        cfg = json.load(f)
    net = configs.get_network(cfg["model"])
    data = load_dataset(cfg["dataset"], cfg["data_dir"], cfg["image_size"], cfg["seed"])
    p = ParamStore()
    if Checkpointer(p, os.path.join(model_dir, "checkpoints")).restore() is None:
        raise FileNotFoundError(f"{model_dir}: no checkpoint to evaluate yet")
    channels = net.input_shape[2]
    loss_sum, predictions = 0.0, []
    for images, labels in to_tf_dataset(data.test_images, data.test_labels, batch_size or cfg["batch_size"],
                                        cfg["image_size"], channels):
        logits = inference_op(images, p, 1.0, net.name)[2]
        loss_sum += float(tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)))
        predictions.append(tf.argmax(logits, 1).numpy())
    predictions = np.concatenate(predictions)
    matrix = confusion_matrix(data.test_labels, predictions, data.num_classes)
    return loss_sum / len(predictions), float(np.mean(predictions == data.test_labels)), matrix, data.class_names


def main(argv):
    from absl import flags
    from tfvgg.cli import fail

    if len(argv) > 1:
        fail(f"unexpected arguments: {' '.join(argv[1:])}", argv)
    try:
        loss, accuracy, matrix, names = evaluate_model_dir(flags.FLAGS.model_dir)
    except (ValueError, FileNotFoundError, ImportError) as e:
        fail(e, argv)
    print(f"test loss {loss:.4f}, test accuracy {accuracy:.4f} ({int(np.trace(matrix))}/{int(matrix.sum())})")
    print("Confusion matrix (rows: true class, columns: predicted):")
    print(format_confusion(matrix, names))


if __name__ == "__main__":
    from absl import app, flags
    from tfvgg.cli import parse_flags_or_exit

    flags.DEFINE_string("model_dir", None, "A directory written by python -m tfvgg.train.", required=True)
    app.run(main, flags_parser=parse_flags_or_exit)
