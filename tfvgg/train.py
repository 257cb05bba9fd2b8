"""Train any tfvgg network from the command line; resumable, with curves to look at.

    python -m tfvgg.train                      # small VGG-11 on scikit-learn's digits, about a minute on a CPU
    python -m tfvgg.train --model=vgg11_small --dataset=fashion_mnist --data_dir=~/fashion --image_size=224 \\
        --optimizer=sgd --momentum=0 --learning_rate=0.05 --epochs=10 --batch_size=128

Every flag is a field of ``tfvgg.train_config.TrainConfig``; the loop is
``tfvgg.trainer.train``. Everything lands in ``--model_dir``: ``config.json``
(a rerun must match it), ``checkpoints/``, ``metrics.csv``,
``confusion_matrix.csv``, ``loss.png``/``accuracy.png`` (with matplotlib) and
``tensorboard/{train,test}``. A killed run resumes when started again.
"""
from absl import flags, logging

from tfvgg import cli, configs
from tfvgg.steps import NonFiniteLoss
from tfvgg.train_config import TrainConfig
from tfvgg.trainer import train

__all__ = ["NonFiniteLoss", "TrainConfig", "train", "main", "run"]   # the library API, re-exported


def define_flags():
    cli.define_config_flags(TrainConfig)


def main(argv):
    logging.set_verbosity(logging.WARNING)  # TensorFlow's checkpoint saver logs at INFO on every save
    cli.no_positional_arguments(argv)
    cfg = cli.config_from_flags(TrainConfig)
    cfg.model = configs.get_network(cfg.model).name
    try:
        train(cfg)
    except (ValueError, FileNotFoundError, ImportError) as e:
        cli.fail(e, argv)
    except NonFiniteLoss as e:
        print(f"train: stopped: {e}")
        return 1
    return 0


def run():
    """``tfvgg-train``: the console script."""
    cli.run(main, define_flags)


if __name__ == "__main__":
    run()
