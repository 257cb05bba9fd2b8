"""Evaluate a trained run directory: ``python -m tfvgg.evaluate --model_dir=runs/digits [--output_json=r.json]``.

Reads the run's ``config.json``, restores its best checkpoint (lowest
validation loss; ``--checkpoint=latest`` for the last one) and prints loss,
accuracy and the confusion matrix of the test split (or the validation split
where the data has no test split) (``tfvgg.evaluation.evaluate_run``).
"""
from absl import flags

from tfvgg import cli
from tfvgg.evaluation import CHECKPOINTS, evaluate_run
from tfvgg.reporting import format_confusion
from tfvgg.util import write_json


def define_flags():
    cli.MODEL_DIR.define("model_dir", None, required=True)
    cli.FlagSpec("enum", "Weights: best (lowest validation loss) or latest.", tuple(CHECKPOINTS)).define(
        "checkpoint", "best")
    cli.FlagSpec("enum", "Split to evaluate (default: test where the data has one, else validation).",
                 ("validation", "test")).define("split", None)
    cli.FlagSpec("enum", "Crops per image: 1 (centre) or 10 (the paper's multi-crop: corners, centre, mirrored).",
                 ("1", "10")).define("crops", "1")
    cli.FlagSpec("path", "Also write the result as JSON here.").define("output_json", None)


def main(argv):
    cli.no_positional_arguments(argv)
    f = flags.FLAGS
    try:
        result = evaluate_run(f.model_dir, split=f.split, checkpoint=f.checkpoint, crops=int(f.crops))
    except (ValueError, FileNotFoundError, ImportError) as e:
        cli.fail(e, argv)
    matrix = result["confusion_matrix"]
    print(f"{result['split']} loss {result['loss']:.4f}, {result['split']} accuracy {result['accuracy']:.4f} "
          f"({int(matrix.trace())}/{int(matrix.sum())}, {result['crops']} crop(s), {result['checkpoint']})")
    print("Confusion matrix (rows: true class, columns: predicted):")
    print(format_confusion(matrix, result["class_names"]))
    if f.output_json:
        write_json(f.output_json, {**result, "confusion_matrix": matrix.tolist(),
                                   "class_names": list(result["class_names"])})
        print(f"Result: {f.output_json}")


def run():
    """``tfvgg-evaluate``: the console script."""
    cli.run(main, define_flags)


if __name__ == "__main__":
    run()
