"""What every command line shares: flags defined once, and bad input as one line with exit code 2.

A flag is a ``FlagSpec`` (kind, help, choices, bounds). The shared ones are
defined below, once; a CLI defines a flag from a spec with its own default,
and a configuration dataclass carries specs in its fields' metadata
(``option``), so ``define_config_flags`` / ``config_from_flags`` turn it into
flags and back (tf_cnn_benchmarks kept its parameters in one spec list too).
Path flags expand ``~`` (the shell leaves it alone after ``--flag=``).
"""
import dataclasses
import os
import sys

from absl import app, flags

from tfvgg import autotune
from tfvgg.configs import network_names
from tfvgg.data import DATASETS
from tfvgg.distribute import STRATEGIES
from tfvgg.images import PREPROCESSING
from tfvgg.ops import CONV_ALGORITHMS, DATA_FORMATS
from tfvgg.optimizers import OPTIMIZERS
from tfvgg.precision import PRECISIONS

USAGE_EXIT_CODE = 2


@dataclasses.dataclass(frozen=True)
class FlagSpec:
    """One flag's kind ("string", "path", "integer", "float", "boolean", "enum", "list"), help and limits."""
    kind: str
    help: str
    choices: tuple = ()
    lower: float = None
    upper: float = None

    def define(self, name, default, flag_values=flags.FLAGS, **extra):
        """Define ``--name`` with this spec and ``default``; ``extra`` goes to absl (e.g. ``required=True``)."""
        bounds = {k: v for k, v in (("lower_bound", self.lower), ("upper_bound", self.upper)) if v is not None}
        if self.kind == "enum":
            flags.DEFINE_enum(name, default, list(self.choices), self.help, flag_values=flag_values,
                              case_sensitive=False, **extra)
        elif self.kind == "list":
            flags.DEFINE_list(name, None if default is None else list(default), self.help, flag_values=flag_values,
                              **extra)
            if self.choices:
                flags.register_validator(name, lambda v: all(x in self.choices for x in v),
                                         f"--{name} takes a comma-separated subset of {', '.join(self.choices)}",
                                         flag_values=flag_values)
        elif self.kind == "path":
            flags.DEFINE(_PathParser(), name, default, self.help, flag_values=flag_values, **extra)
        else:   # string, boolean, integer, float (the last two with their bounds)
            getattr(flags, f"DEFINE_{self.kind}")(name, default, self.help, flag_values=flag_values, **bounds,
                                                  **extra)


class _PathParser(flags.ArgumentParser):
    """A string flag holding a path: ``~`` and ``~user`` are expanded."""
    syntactic_help = "a path"

    def parse(self, argument):
        return None if argument is None else os.path.expanduser(str(argument))

    def flag_type(self):
        return "string"


# The flags several command lines share, each defined here once.
MODEL = FlagSpec("enum", "Network: A, A-LRN, B, C, D, E (= vgg11, vgg13, vgg16, vgg19 for A, B, D, E), "
                 "vgg11_small, alexnet, lenet.", tuple(network_names()))
IMAGE_SIZE = FlagSpec("integer", "Image height and width in pixels; images are resized to it (unset: the network's "
                      "own, 224 for VGG).", lower=1)
BATCH_SIZE = FlagSpec("integer", "Images per step (the global batch under a strategy).", lower=1)
MICRO_BATCH_SIZE = FlagSpec("integer", "Gradients in micro-batches of this many images (per replica), one at a "
                                       "time and summed: the same step in the activation memory of the micro-batch, "
                                       "for a batch that otherwise does not fit (0 = the whole batch at once).",
                            lower=0)
NUM_CLASSES = FlagSpec("integer", "Width of the last layer (default: the network's).", lower=1)
PRECISION = FlagSpec("enum", "Compute precision: fp32, or bf16 / fp16 with float32 variables (mixed precision; "
                     "fp16 scales the loss).", tuple(PRECISIONS))
CONV_ALGORITHM = FlagSpec("enum", "3x3 stride-1 convolutions: direct (tf.nn.conv2d), winograd2 (F(2x2,3x3)), "
                          "winograd4 (F(4x4,3x3)), winograd6 (F(6x6,3x3)), or auto (per layer, the fastest measured "
                          "on this machine and cached; TFVGG_AUTOTUNE=0: a fixed rule; direct on GPUs).",
                          CONV_ALGORITHMS)
DATA_FORMAT = FlagSpec("enum", "Tensor layout: NHWC or NCHW.", DATA_FORMATS)
STRATEGY = FlagSpec("enum", "default (one device), mirrored (local GPUs, or --cpu_replicas CPU devices), "
                    "multi_worker (TF_CONFIG in each worker's environment).", STRATEGIES)
CPU_REPLICAS = FlagSpec("integer", "With --strategy=mirrored and no GPU: split the CPU into this many devices.",
                        lower=0)
PREPROCESSING_MODE = FlagSpec("enum", "caffe: BGR minus the ImageNet mean (Keras/Caffe weights); rgb_mean: the "
                              "paper's RGB mean; none.", PREPROCESSING)
WEIGHTS = FlagSpec("path", "Weight file: Keras .h5 / .weights.h5, the classic vgg16_weights.npz, or tfvgg .npz.")
DATA_DIR = FlagSpec("path", "Where the dataset's files are.")
MODEL_DIR = FlagSpec("path", "Run directory: config.json, checkpoints, metrics.csv, plots, TensorBoard events.")
DATASET = FlagSpec("enum", "digits (ships with scikit-learn), mnist / fashion_mnist (IDX files in --data_dir), "
                   "folder (--data_dir/train/<class>/*.jpg [+ validation/, test/], or --data_dir/<class>/*.jpg), "
                   "imagenet (TFRecord shards train-*-of-* and validation-*-of-* in --data_dir).", DATASETS)
OPTIMIZER = FlagSpec("enum", "sgd (with --momentum) or adam.", tuple(OPTIMIZERS))


def option(spec, default):
    """A dataclass field whose command-line flag is ``spec`` (see ``define_config_flags``)."""
    return dataclasses.field(default=default, metadata={"flag": spec})


def define_config_flags(config_class, flag_values=flags.FLAGS):
    """One flag per field of ``config_class`` that carries a spec, with the field's default."""
    for field in dataclasses.fields(config_class):
        if "flag" in field.metadata:
            field.metadata["flag"].define(field.name, field.default, flag_values)


def config_from_flags(config_class, flag_values=flags.FLAGS, **overrides):
    """``config_class`` filled from the parsed flags (fields without a spec keep their default)."""
    values = {f.name: flag_values[f.name].value for f in dataclasses.fields(config_class) if "flag" in f.metadata}
    return config_class(**{**values, **overrides})


def fail(message, argv=None):
    """Print ``<program>: error: <message>`` (its first line) to stderr and exit with code 2 (no traceback)."""
    program = os.path.basename((argv or sys.argv or ["tfvgg"])[0]) or "tfvgg"
    first_line = str(message).strip().splitlines()[0] if str(message).strip() else "invalid input"
    print(f"{program}: error: {first_line}", file=sys.stderr)
    sys.exit(USAGE_EXIT_CODE)


def parse_flags_or_exit(argv):
    """absl's flag parser for ``app.run(..., flags_parser=...)``, with ``fail`` for bad flags."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        fail(e, argv)


def no_positional_arguments(argv):
    """``fail`` unless the command line had flags only."""
    if len(argv) > 1:
        fail(f"unexpected arguments: {' '.join(argv[1:])}", argv)


def run(main, define_flags):
    """A command line's body: define its flags, parse them (bad ones: one line, exit 2), run ``main(argv)``.

    The flags ``define_flags`` defines are the program's key flags, so ``--help`` and ``--helpshort``
    list them (absl lists the main module's own, and these are defined from here).
    """
    # Before app.run: its init callbacks include TensorFlow's (distribute.combinations), which lists the devices,
    # and XLA reads TF_XLA_FLAGS then; named in main, the cache directory stayed empty.
    autotune.use_persistent_xla_cache()
    before = set(flags.FLAGS)
    define_flags()
    for name in [n for n in flags.FLAGS if n not in before]:
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flags.FLAGS[name])
    app.run(main, flags_parser=parse_flags_or_exit)
