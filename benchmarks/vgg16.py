"""Time VGG-16 forward and forward-backward passes: ``python -m benchmarks.vgg16 --batch_size=32``.

Every flag: ``python -m benchmarks.vgg16 --help``; the command line lives in ``benchmarks.cnn``.
"""
from benchmarks import cnn
from tfvgg import cli


def define_flags():
    cnn.define_flags(default_model="D")


def run():
    """``tfvgg-bench``: the console script."""
    cli.run(cnn.main, define_flags)


if __name__ == "__main__":
    run()
