"""Time VGG-19 forward and forward-backward passes: ``python -m benchmarks.vgg19 --batch_size=32``.

Every flag: ``python -m benchmarks.vgg19 --help``; the command line lives in ``benchmarks.cnn``.
"""
from benchmarks import cnn
from tfvgg import cli


def define_flags():
    cnn.define_flags(default_model="E")


def run():
    """``tfvgg-bench-vgg19``: the console script."""
    cli.run(cnn.main, define_flags)


if __name__ == "__main__":
    run()
