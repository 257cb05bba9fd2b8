"""Evaluating a trained run directory: its best (or latest) weights on a split of the data it was trained on."""
import os

import tensorflow as tf

from tfvgg import configs, serving
from tfvgg.checkpoint import Checkpointer
from tfvgg.data.pipeline import batches
from tfvgg.data.sources import open_source
from tfvgg.params import ParamStore
from tfvgg.reporting import confusion_matrix
from tfvgg.steps import evaluate, make_eval_step, network_fn
from tfvgg.train_config import preprocessing, read_config

CHECKPOINTS = {"best": serving.BEST_DIR, "latest": "checkpoints"}


def evaluate_run(model_dir, batch_size=None, split=None, checkpoint="best", crops=1):
    """A dict: split, checkpoint, loss, accuracy, images, confusion matrix and class names of a run.

    Computes as the run did (its precision, convolution algorithm and preprocessing) with the trainer's
    evaluation step, so ``checkpoint="latest"`` reproduces the last epoch's columns. ``split``: test where the
    data has one, else validation. ``crops=10``: the mean softmax of 10 crops per image (the paper's multi-crop,
    corners and centre and their mirrors; needs the paper's augmentation); the loss is then that of the mean.
    """
    cfg = read_config(model_dir)
    net = configs.get_network(cfg.model)
    source = open_source(cfg.dataset, cfg.data_dir, cfg.seed, cfg.validation_fraction)
    split = split or ("test" if source.size("test") else "validation")
    if not source.size(split):
        raise ValueError(f"{source.describe()} has no {split} images")
    p = ParamStore()
    restored = Checkpointer(p, os.path.join(model_dir, CHECKPOINTS[checkpoint])).restore()
    if restored is None:
        raise FileNotFoundError(f"{model_dir}: no {checkpoint} checkpoint to evaluate yet")
    channels = net.input_shape[2]
    prep = preprocessing(cfg, channels, source.photographs)
    num_classes = int(p.params[-1].shape[0])
    logits_fn = network_fn(p, net.name, num_classes, cfg.dtype, cfg.conv_algorithm)
    batch_size = batch_size or cfg.batch_size
    if crops == 1:
        loss, accuracy, predictions, labels = evaluate(make_eval_step(logits_fn, cfg.image_size, channels),
                                                       batches(source, split, batch_size, prep))
    else:
        loss, accuracy, predictions, labels = _evaluate_ten_crops(logits_fn, source, split, batch_size, prep)
    names = source.class_names + tuple(f"class {i}" for i in range(source.num_classes, num_classes))
    return {"model_dir": model_dir, "split": split, "checkpoint": restored, "crops": crops, "loss": loss,
            "accuracy": accuracy, "images": int(len(labels)),
            "confusion_matrix": confusion_matrix(labels, predictions, num_classes), "class_names": names}


def _evaluate_ten_crops(logits_fn, source, split, batch_size, prep):
    """``evaluate``'s tuple with each image's softmax averaged over its 10 crops."""
    ds = source.images(split).map(lambda image, label: (prep.ten_crop_input(image), label),
                                  num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)

    @tf.function(reduce_retracing=True)
    def step(crops, labels):
        shape = tf.shape(crops)
        flat = tf.reshape(crops, tf.concat([[-1], shape[2:]], 0))
        probabilities = tf.reduce_mean(tf.reshape(tf.nn.softmax(logits_fn(flat, 1.0)), [shape[0], 10, -1]), 1)
        picked = tf.gather(probabilities, labels, batch_dims=1)
        return -tf.reduce_sum(tf.math.log(tf.maximum(picked, 1e-30))), tf.argmax(probabilities, 1)

    return evaluate(step, ds)
