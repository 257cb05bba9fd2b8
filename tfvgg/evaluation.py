"""Evaluating a trained run directory: the checkpoint it ended with, on the data it was trained on."""
import os

from tfvgg import configs
from tfvgg.checkpoint import Checkpointer
from tfvgg.data import load_dataset
from tfvgg.params import ParamStore
from tfvgg.reporting import confusion_matrix
from tfvgg.steps import evaluate, make_eval_step, network_fn
from tfvgg.train_config import read_config


def evaluate_run(model_dir, batch_size=None):
    """(test loss, test accuracy, confusion matrix, class names) of the latest checkpoint in ``model_dir``.

    Restores the weights only, and computes as the run did (its precision and convolution algorithm), with
    the evaluation step and loop the trainer uses, so the numbers equal its last epoch's test columns.
    """
    cfg = read_config(model_dir)
    net = configs.get_network(cfg.model)
    data = load_dataset(cfg.dataset, cfg.data_dir, cfg.image_size, cfg.seed)
    p = ParamStore()
    if Checkpointer(p, os.path.join(model_dir, "checkpoints")).restore() is None:
        raise FileNotFoundError(f"{model_dir}: no checkpoint to evaluate yet")
    channels = net.input_shape[2]
    eval_step = make_eval_step(network_fn(p, net.name, data.num_classes, cfg.dtype, cfg.conv_algorithm),
                               cfg.image_size, channels)
    loss, accuracy, predictions = evaluate(eval_step, data.test_images, data.test_labels,
                                           batch_size or cfg.batch_size, cfg.image_size, channels)
    return loss, accuracy, confusion_matrix(data.test_labels, predictions, data.num_classes), data.class_names
