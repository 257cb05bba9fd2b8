"""Time VGG-16 forward and forward-backward passes: ``python -m benchmarks.vgg16 --batch_size=32``.

Every flag: ``python -m benchmarks.vgg16 --help``; the timing itself lives in ``benchmarks.cnn``.
"""
from absl import app, flags

from benchmarks import cnn
from tfvgg.cli import parse_flags_or_exit

if __name__ == "__main__":
    cnn.define_flags(default_model="D")
    flags.adopt_module_key_flags(cnn)   # --help lists the benchmark's flags, not only --helpfull
    app.run(cnn.main, flags_parser=parse_flags_or_exit)
