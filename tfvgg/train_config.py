"""What a training run is: ``TrainConfig`` (each field also a ``python -m tfvgg.train`` flag) and its config.json.

A run directory keeps the configuration it was started with; a rerun resumes
only with the same values, except the few in ``RESUMABLE_CHANGES``.
"""
import dataclasses
import json
import os

from tfvgg import cli, configs
from tfvgg.cli import FlagSpec, option
from tfvgg.data.augment import Augmentation
from tfvgg.data.pipeline import Preprocessing
from tfvgg.ops import CONV_ALGORITHMS
from tfvgg.optimizers import OPTIMIZERS
from tfvgg.precision import compute_dtype
from tfvgg.util import write_json
from tfvgg.winograd import check_precision

# Flags a resumed run may change; every other one must equal the first run's.
RESUMABLE_CHANGES = ("epochs", "log_every", "checkpoint_every", "max_checkpoints", "conv_algorithm", "memory_check",
                     "skip_bad_images", "micro_batch_size")
CONFIG_FILE = "config.json"


def _int(help_text, lower=1):
    return FlagSpec("integer", help_text, lower=lower)


def _float(help_text, lower=None, upper=None):
    return FlagSpec("float", help_text, lower=lower, upper=upper)


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a training run; the defaults train a small VGG-11 on scikit-learn's digits."""
    model: str = option(cli.MODEL, "vgg11_small")
    dataset: str = option(cli.DATASET, "digits")
    data_dir: str = option(cli.DATA_DIR, None)
    image_size: int = option(cli.IMAGE_SIZE, 32)
    num_classes: int = option(_int("Width of the last layer (0 = the number of classes in the data).", lower=0), 0)
    validation_fraction: float = option(_float("Share of the training images held out for validation where the "
                                               "data has no validation split of its own (fixed by --seed).",
                                               0.0, 0.9), 0.1)
    augment: str = option(FlagSpec("enum", "paper: the VGG paper's scale jitter, random crop and flip, centre crop "
                                           "at test (photographs); none: resize only; auto: paper for folder and "
                                           "imagenet, none for digits and IDX sets.", ("auto", "paper", "none")),
                          "auto")
    train_scale: str = option(FlagSpec("string", "Training scale S for a 224 crop (scaled with --image_size): one "
                                                 "value (fixed S) or two (S jittered in [min, max]), e.g. 256,512."),
                              "256")
    test_scale: int = option(_int("Test scale Q for a 224 crop (0: S, or the middle of the jitter range).",
                                  lower=0), 0)
    skip_bad_images: bool = option(FlagSpec("boolean", "Skip and count undecodable images instead of stopping "
                                                       "with the first one named."), False)
    batch_size: int = option(cli.BATCH_SIZE, 32)
    micro_batch_size: int = option(cli.MICRO_BATCH_SIZE, 0)
    epochs: int = option(_int("Passes over the training set."), 15)
    # The paper's SGD needs far more steps than 1,438 digits give; Adam starts this BN-less network.
    optimizer: str = option(cli.OPTIMIZER, "adam")
    learning_rate: float = option(_float("Initial learning rate.", lower=1e-12), 3e-4)
    momentum: float = option(_float("SGD momentum (0 = plain SGD).", 0.0, 0.999), 0.9)
    weight_decay: float = option(_float("L2 weight decay (default: 5e-4 with sgd, 0 with adam).", 0.0), None)
    keep_prob: float = option(_float("Dropout keep probability in training.", 1e-6, 1.0), 0.5)
    precision: str = option(cli.PRECISION, "fp32")
    plateau_patience: int = option(_int("Epochs without a better test loss before the learning rate drops "
                                        "(0 = never).", lower=0), 2)
    plateau_factor: float = option(_float("Learning-rate factor on a plateau.", 0.0, 1.0), 0.1)
    model_dir: str = option(cli.MODEL_DIR, "runs/digits")
    seed: int = option(_int("Seed of initialization, shuffling and dropout.", lower=0), 0)
    train_subset: int = option(_int("Train on the first N images only (0 = all).", lower=0), 0)
    checkpoint_every: int = option(_int("Checkpoint every N steps (and every epoch)."), 500)
    max_checkpoints: int = option(_int("Checkpoints kept."), 3)
    log_every: int = option(_int("Progress line every N steps."), 20)
    deterministic: bool = option(FlagSpec("boolean", "Make every op deterministic (bit-identical reruns)."), True)
    strategy: str = option(cli.STRATEGY, "default")
    cpu_replicas: int = option(cli.CPU_REPLICAS, 0)
    conv_algorithm: str = option(cli.CONV_ALGORITHM, "direct")
    memory_check: bool = option(FlagSpec("boolean", "Before building anything, estimate the memory a training "
                                                    "step needs and refuse a batch that cannot fit (CPU only)."), True)

    @property
    def dtype(self):
        """The compute dtype of ``precision``."""
        return compute_dtype(self.precision)


def check_config(cfg):
    """ValueError naming the first field out of range; run before anything is written."""
    configs.get_network(cfg.model)
    if cfg.conv_algorithm not in CONV_ALGORITHMS:
        raise ValueError(f"conv_algorithm must be one of {', '.join(CONV_ALGORITHMS)}; got {cfg.conv_algorithm!r}")
    check_precision(cfg.conv_algorithm, cfg.dtype)
    if cfg.optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {cfg.optimizer!r}")
    if not 0.0 < cfg.keep_prob <= 1.0:
        raise ValueError(f"keep_prob must be in (0, 1]; got {cfg.keep_prob}")
    for name in ("image_size", "batch_size", "epochs", "checkpoint_every", "log_every", "max_checkpoints"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be >= 1; got {getattr(cfg, name)}")
    if cfg.micro_batch_size < 0:
        raise ValueError(f"micro_batch_size must be >= 0; got {cfg.micro_batch_size}")
    if cfg.augment != "none":
        preprocessing(cfg, channels=3, photographs=True)   # the scales' own checks
    if cfg.learning_rate <= 0:
        raise ValueError(f"learning_rate must be > 0; got {cfg.learning_rate}")


def preprocessing(cfg, channels, photographs):
    """The run's ``pipeline.Preprocessing``: the paper's augmentation and RGB mean for photographs (or as
    ``--augment`` says), a resize to [0, 1] pixels for the digit sets."""
    augment = cfg.augment == "paper" or (cfg.augment == "auto" and photographs)
    try:
        scales = tuple(int(v) for v in str(cfg.train_scale).split(","))
    except ValueError:
        raise ValueError(f"train_scale takes one or two integers, e.g. 256 or 256,512; got {cfg.train_scale!r}") \
            from None
    augmentation = Augmentation(cfg.image_size, scales, cfg.test_scale or None) if augment else None
    pixels = "rgb_mean" if photographs and channels == 3 else "unit"
    return Preprocessing(cfg.image_size, channels, augmentation, pixels)


def check_or_write_config(cfg, write=True):
    """Refuse a run directory started with other values; write (or rewrite) its config.json if ``write``."""
    path = os.path.join(cfg.model_dir, CONFIG_FILE)
    current = json.loads(json.dumps(dataclasses.asdict(cfg)))   # tuples as lists, as they read back
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            previous = json.load(f)
        changed = [f"--{k}={previous.get(k)!r} before, {v!r} now" for k, v in current.items()
                   if k not in RESUMABLE_CHANGES and k != "model_dir" and previous.get(k) != v]
        if changed:
            raise ValueError(f"{cfg.model_dir} holds a run with other flags ({'; '.join(changed)}); "
                             "use the same flags to resume, or another --model_dir")
    if write:
        write_json(path, current)


def read_run_json(model_dir, file_name):
    """A JSON file of a run directory; FileNotFoundError saying what is missing where."""
    path = os.path.join(model_dir, file_name)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{model_dir}: no {file_name}; is it a tfvgg.train --model_dir (of this version)?")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_config(model_dir):
    """The ``TrainConfig`` a run directory was trained with (``model_dir`` set to where it is now)."""
    values = read_run_json(model_dir, CONFIG_FILE)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{**{k: v for k, v in values.items() if k in known}, "model_dir": model_dir})
