"""Evaluate a trained run directory: ``python -m tfvgg.evaluate --model_dir=runs/digits``.

Reads the run's ``config.json``, restores its latest checkpoint (the weights
only) and prints test loss, accuracy and the confusion matrix
(``tfvgg.evaluation.evaluate_run``).
"""
import numpy as np
from absl import flags

from tfvgg import cli
from tfvgg.evaluation import evaluate_run
from tfvgg.reporting import format_confusion


def define_flags():
    cli.MODEL_DIR.define("model_dir", None, required=True)


def main(argv):
    cli.no_positional_arguments(argv)
    try:
        loss, accuracy, matrix, names = evaluate_run(flags.FLAGS.model_dir)
    except (ValueError, FileNotFoundError, ImportError) as e:
        cli.fail(e, argv)
    print(f"test loss {loss:.4f}, test accuracy {accuracy:.4f} ({int(np.trace(matrix))}/{int(matrix.sum())})")
    print("Confusion matrix (rows: true class, columns: predicted):")
    print(format_confusion(matrix, names))


def run():
    """``tfvgg-evaluate``: the console script."""
    cli.run(main, define_flags)


if __name__ == "__main__":
    run()
