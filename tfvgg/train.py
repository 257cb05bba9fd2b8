"""Train any tfvgg network with a GradientTape step in a tf.function; resumable, with curves to look at.

    python -m tfvgg.train                      # small VGG-11 on scikit-learn's digits, a few minutes on a CPU
    python -m tfvgg.train --model=vgg11_small --dataset=fashion_mnist --data_dir=DIR --image_size=224 \\
        --learning_rate=0.05 --momentum=0 --epochs=10 --batch_size=128

Everything lands in ``--model_dir``: ``config.json`` (the flags; a rerun must match them),
``checkpoints/`` (every ``--checkpoint_every`` steps and every epoch), ``metrics.csv``
(one row per epoch), ``confusion_matrix.csv``, ``loss.png``/``accuracy.png`` (with
matplotlib) and ``tensorboard/`` event files. A run that is killed resumes from
its last checkpoint when started again with the same flags.
"""
import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import shutil
import time

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from tfvgg import configs
from tfvgg.checkpoint import Checkpointer
from tfvgg.data import load_dataset, to_tf_dataset
from tfvgg.distribute import STRATEGIES, is_chief, make_strategy, task
from tfvgg.network import inference_op
from tfvgg.ops import CONV_ALGORITHMS
from tfvgg.optimizers import OPTIMIZERS
from tfvgg.params import ParamStore
from tfvgg.precision import DynamicLossScale, compute_dtype
from tfvgg.winograd import check_precision

METRIC_FIELDS = ("epoch", "step", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "learning_rate",
                 "seconds", "images_per_sec")
# Flags a resumed run may change; every other one must equal the first run's.
RESUMABLE_CHANGES = ("epochs", "log_every", "checkpoint_every", "max_checkpoints", "conv_algorithm")


@dataclasses.dataclass
class TrainConfig:
    model: str = "vgg11_small"
    dataset: str = "digits"
    data_dir: str = None
    image_size: int = 32
    batch_size: int = 32
    epochs: int = 15
    optimizer: str = "adam"       # the paper's SGD (below) needs far more steps than 1,438 digits give
    learning_rate: float = 3e-4
    momentum: float = 0.9         # SGD only
    weight_decay: float = None    # None: 5e-4 with SGD (the paper's), 0 with Adam
    keep_prob: float = 0.5
    precision: str = "fp32"
    plateau_patience: int = 2     # epochs without a better test loss before ...
    plateau_factor: float = 0.1   # ... the learning rate is multiplied by this
    model_dir: str = "runs/digits"
    seed: int = 0
    train_subset: int = 0         # use only the first N training images (0 = all)
    checkpoint_every: int = 500   # steps
    max_checkpoints: int = 3
    log_every: int = 20           # steps
    deterministic: bool = True    # tf.config.experimental.enable_op_determinism()
    strategy: str = "default"     # default, mirrored, multi_worker (tfvgg.distribute)
    cpu_replicas: int = 0         # mirrored without GPUs: split the CPU into this many devices
    conv_algorithm: str = "direct"  # 3x3 convolutions: direct, winograd2, winograd4, auto (tfvgg.ops.conv_op)


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or infinite; the last checkpoint is the last good state."""


def train(cfg, print_fn=print):
    """Run (or resume) the training ``cfg`` describes; returns the final metrics row as a dict."""
    _check_config(cfg)
    strategy = make_strategy(cfg.strategy, cfg.cpu_replicas)   # before TensorFlow runs any op
    chief = is_chief() if cfg.strategy == "multi_worker" else True
    os.makedirs(cfg.model_dir, exist_ok=True)
    _check_or_write_config(cfg, write=chief)
    tf.random.set_seed(cfg.seed)
    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()

    net = configs.get_network(cfg.model)
    channels = net.input_shape[2]
    data = load_dataset(cfg.dataset, cfg.data_dir, cfg.image_size, cfg.seed)
    train_x, train_y = data.train_images, data.train_labels
    if cfg.train_subset:
        train_x, train_y = train_x[:cfg.train_subset], train_y[:cfg.train_subset]
    steps_per_epoch = math.ceil(len(train_x) / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    replicas = strategy.num_replicas_in_sync
    if cfg.batch_size % replicas:
        raise ValueError(f"--batch_size={cfg.batch_size} does not split evenly over {replicas} replicas")

    dtype = compute_dtype(cfg.precision)
    with strategy.scope():   # variables, slots and counters become mirrored under a strategy
        p = ParamStore(seed=cfg.seed)
        inference_op(tf.zeros([1, cfg.image_size, cfg.image_size, channels]), p, 1.0, net.name, data.num_classes)
        optimizer = _make_optimizer(cfg)
        optimizer.build(p.trainable_variables)
        state = _TrainState()
        loss_scale = DynamicLossScale() if cfg.precision == "fp16" else None
    extras = {"optimizer": optimizer, "state": state, **({"loss_scale": loss_scale} if loss_scale else {})}
    checkpoint_dir = os.path.join(cfg.model_dir, "checkpoints")
    # Every worker saves (saving is collective); only the chief keeps what it saved.
    save_dir = checkpoint_dir if chief else os.path.join(cfg.model_dir, f".worker-{task()[1]}-checkpoints")
    checkpointer = Checkpointer(p, save_dir, cfg.max_checkpoints, **extras)
    restored = checkpointer.restore(tf.train.latest_checkpoint(checkpoint_dir))
    start_step = int(state.step.numpy())
    if restored:
        print_fn(f"Resumed from {restored} (step {start_step} of {total_steps})")
    print_fn(f"Training {net.description} on {data.name}: {len(train_x)} train / {len(data.test_images)} test "
             f"images at {cfg.image_size}x{cfg.image_size}x{channels}, {p.count_params():,} parameters, "
             f"{cfg.epochs} epochs of {steps_per_epoch} steps"
             + (f", {replicas} replicas ({cfg.strategy})" if replicas > 1 or cfg.strategy != "default" else ""))

    def replica_step(images, labels):
        """One replica's share of a step; gradients and counts are summed over replicas."""
        ctx = tf.distribute.get_replica_context()
        seed = tf.stack([tf.constant(cfg.seed, tf.int64),
                         state.step * replicas + tf.cast(ctx.replica_id_in_sync_group, tf.int64)])
        variables = p.trainable_variables
        count = ctx.all_reduce("sum", tf.cast(tf.shape(labels)[0], tf.float32))
        with tf.GradientTape() as tape:
            logits = inference_op(images, p, cfg.keep_prob, net.name, data.num_classes, dtype=dtype,
                                  dropout_seed=seed, conv_algorithm=cfg.conv_algorithm)[2]
            loss_sum = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
            share = loss_sum / count   # summed over replicas: the mean over the global batch
            scaled = loss_scale.scaled(share) if loss_scale else share
        grads = ctx.all_reduce("sum", tape.gradient(scaled, variables))
        grads_finite = tf.constant(True)
        if loss_scale:
            grads, grads_finite = loss_scale.unscale(grads)
        loss = ctx.all_reduce("sum", loss_sum) / count
        correct = ctx.all_reduce("sum", tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, 1), labels), tf.float32)))
        ok = tf.math.is_finite(loss) & grads_finite
        ctx.merge_call(apply_update, args=(grads, loss, correct, count, ok, grads_finite))
        return loss, count

    def apply_update(strategy_, grads, loss, correct, count, ok, grads_finite):
        """Cross-replica: update the variables once (on every device), unless the step went non-finite."""
        first = lambda value: strategy_.experimental_local_results(value)[0]  # noqa: E731 - same on all replicas
        if loss_scale:
            loss_scale.update(first(grads_finite))

        def apply():
            optimizer.apply(grads, p.trainable_variables)
            state.record(first(loss), tf.cast(first(correct), tf.int64), tf.cast(first(count), tf.int64))
            return tf.constant(True)

        return tf.cond(first(ok), apply, lambda: tf.constant(False))

    @tf.function(reduce_retracing=True)
    def train_step(images, labels):
        loss, count = strategy.run(replica_step, args=(images, labels))
        return strategy.experimental_local_results(loss)[0], strategy.experimental_local_results(count)[0]

    image_spec = tf.TensorSpec([None, cfg.image_size, cfg.image_size, channels], tf.float32)
    label_spec = tf.TensorSpec([None], tf.int64)

    @tf.function(input_signature=[image_spec, label_spec])
    def eval_step(images, labels):
        logits = inference_op(images, p, 1.0, net.name, data.num_classes, dtype=dtype,
                              conv_algorithm=cfg.conv_algorithm)[2]
        loss_sum = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        return loss_sum, tf.argmax(logits, 1)

    def evaluate():
        loss_sum, predictions = 0.0, []
        for images, labels in to_tf_dataset(data.test_images, data.test_labels, cfg.batch_size, cfg.image_size,
                                            channels):
            batch_loss, batch_predictions = eval_step(images, labels)
            loss_sum += float(batch_loss)
            predictions.append(batch_predictions.numpy())
        predictions = np.concatenate(predictions)
        return loss_sum / len(predictions), float(np.mean(predictions == data.test_labels)), predictions

    def save_if_finite(step, epoch):
        """Checkpoint, unless an update overflowed (a finite loss can still leave inf weights behind)."""
        if not all(bool(tf.reduce_all(tf.math.is_finite(v))) for v in p.params):
            raise NonFiniteLoss(
                f"weights are not finite after step {step} (epoch {epoch + 1}); stopped without saving. The last "
                f"good checkpoint is {tf.train.latest_checkpoint(checkpoint_dir)}; lower --learning_rate and "
                "train in a new --model_dir")
        checkpointer.save(step)
        if not chief:
            shutil.rmtree(save_dir, ignore_errors=True)

    writer = tf.summary.create_file_writer(os.path.join(cfg.model_dir, "tensorboard" if chief else
                                                        f".worker-{task()[1]}-tensorboard"))
    history = _read_metrics(cfg.model_dir, completed_epochs=start_step // steps_per_epoch)
    row = history[-1] if history else None
    step = start_step
    for epoch in range(start_step // steps_per_epoch, cfg.epochs):
        done_in_epoch = step - epoch * steps_per_epoch
        batches = to_tf_dataset(train_x, train_y, cfg.batch_size, cfg.image_size, channels,
                                shuffle_seed=cfg.seed * 100003 + epoch, skip_batches=done_in_epoch)
        if cfg.strategy != "default":
            options = tf.data.Options()
            options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
            batches = strategy.experimental_distribute_dataset(batches.with_options(options))
        epoch_start, seen = time.perf_counter(), 0
        for images, labels in batches:
            loss, count = train_step(images, labels)
            loss = float(loss)
            if not math.isfinite(loss):
                raise NonFiniteLoss(
                    f"loss is {loss} at step {step + 1} (epoch {epoch + 1}); stopped without saving. The last good "
                    f"checkpoint is {tf.train.latest_checkpoint(checkpoint_dir)}; lower --learning_rate and train "
                    "in a new --model_dir")
            step += 1
            seen += int(count)
            if step % cfg.log_every == 0:
                elapsed = time.perf_counter() - epoch_start
                rate = seen / elapsed
                eta = (total_steps - step) * cfg.batch_size / rate
                print_fn(f"  step {step}/{total_steps} (epoch {epoch + 1}): loss {loss:.4f}, {rate:.0f} images/s, "
                         f"ETA {eta:.0f} s")
                with writer.as_default(step=step):
                    write_scalar("train/step_loss", loss)
            if step % cfg.checkpoint_every == 0:
                save_if_finite(step, epoch)
        seconds = time.perf_counter() - epoch_start
        test_loss, test_accuracy, predictions = evaluate()
        train_loss, train_accuracy = state.epoch_means()
        row = {"epoch": epoch + 1, "step": step, "train_loss": train_loss, "train_accuracy": train_accuracy,
               "test_loss": test_loss, "test_accuracy": test_accuracy,
               "learning_rate": float(optimizer.learning_rate.numpy()), "seconds": seconds,
               "images_per_sec": seen / seconds if seconds > 0 else 0.0}
        history.append(row)
        print_fn(f"epoch {epoch + 1}/{cfg.epochs}: train loss {train_loss:.4f} accuracy {train_accuracy:.4f}; "
                 f"test loss {test_loss:.4f} accuracy {test_accuracy:.4f}; lr {row['learning_rate']:g}; "
                 f"{row['images_per_sec']:.0f} images/s")
        with writer.as_default(step=step):
            for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "learning_rate",
                        "images_per_sec"):
                write_scalar(key.replace("_", "/", 1) if key.startswith(("train", "test")) else key, row[key])
        writer.flush()
        state.end_epoch(test_loss, optimizer, cfg.plateau_patience, cfg.plateau_factor)
        if chief:
            _write_metrics(cfg.model_dir, history)
        save_if_finite(step, epoch)
    if row is None:
        raise RuntimeError("no epoch ran")
    _, _, predictions = evaluate()
    matrix = confusion_matrix(data.test_labels, predictions, data.num_classes)
    print_fn("Confusion matrix (rows: true class, columns: predicted):")
    print_fn(format_confusion(matrix, data.class_names))
    print_fn(f"Weights checksum: {weights_checksum(p)}")
    if not chief:
        return row
    _write_confusion(cfg.model_dir, matrix, data.class_names)
    plots = plot_history(cfg.model_dir, history)
    print_fn(f"Metrics: {os.path.join(cfg.model_dir, 'metrics.csv')}; TensorBoard: "
             f"{os.path.join(cfg.model_dir, 'tensorboard')}" + (f"; plots: {', '.join(plots)}" if plots else
                                                                  " (install matplotlib for PNG plots)"))
    return row


def weights_checksum(p):
    """A hex digest of every variable's bytes: equal digests mean identical weights (across workers or runs)."""
    digest = hashlib.sha256()
    for variable in p.params:
        digest.update(np.ascontiguousarray(variable.numpy()).tobytes())
    return digest.hexdigest()[:16]


def write_scalar(tag, value):
    """A scalar event TensorBoard's Scalars tab shows; needs no tensorboard package (``tf.summary.write``)."""
    metadata = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
                                           data_class=summary_pb2.DATA_CLASS_SCALAR)
    return tf.summary.write(tag, tf.constant(value, tf.float32), metadata=metadata.SerializeToString())


class _TrainState(tf.Module):
    """Counters a resume must restore: global step, running sums of the current epoch, plateau bookkeeping."""

    def __init__(self):
        super().__init__(name="train_state")
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.loss_sum = tf.Variable(0.0, dtype=tf.float64, trainable=False)
        self.correct = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.seen = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.best_test_loss = tf.Variable(np.inf, dtype=tf.float64, trainable=False)
        self.bad_epochs = tf.Variable(0, dtype=tf.int64, trainable=False)

    def record(self, loss, correct, count):
        self.step.assign_add(1)
        self.loss_sum.assign_add(tf.cast(loss, tf.float64) * tf.cast(count, tf.float64))
        self.correct.assign_add(correct)
        self.seen.assign_add(count)

    def epoch_means(self):
        seen = max(int(self.seen.numpy()), 1)
        return float(self.loss_sum.numpy()) / seen, int(self.correct.numpy()) / seen

    def end_epoch(self, test_loss, optimizer, patience, factor):
        """Reset the sums; divide the learning rate when the test loss stopped improving."""
        self.loss_sum.assign(0.0)
        self.correct.assign(0)
        self.seen.assign(0)
        if test_loss < float(self.best_test_loss.numpy()):
            self.best_test_loss.assign(test_loss)
            self.bad_epochs.assign(0)
            return
        self.bad_epochs.assign_add(1)
        if patience and int(self.bad_epochs.numpy()) >= patience:
            optimizer.learning_rate.assign(optimizer.learning_rate * factor)
            self.bad_epochs.assign(0)


def _make_optimizer(cfg):
    if cfg.optimizer == "sgd":
        decay = 5e-4 if cfg.weight_decay is None else cfg.weight_decay
        return OPTIMIZERS["sgd"](cfg.learning_rate, cfg.momentum, decay)
    return OPTIMIZERS["adam"](cfg.learning_rate, weight_decay=cfg.weight_decay or 0.0)


def _check_config(cfg):
    configs.get_network(cfg.model)
    dtype = compute_dtype(cfg.precision)
    if cfg.conv_algorithm not in CONV_ALGORITHMS:
        raise ValueError(f"conv_algorithm must be one of {', '.join(CONV_ALGORITHMS)}; got {cfg.conv_algorithm!r}")
    check_precision(cfg.conv_algorithm, dtype)   # here, before anything is written to model_dir
    if cfg.optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {cfg.optimizer!r}")
    if not 0.0 < cfg.keep_prob <= 1.0:
        raise ValueError(f"keep_prob must be in (0, 1]; got {cfg.keep_prob}")
    for name in ("image_size", "batch_size", "epochs", "checkpoint_every", "log_every", "max_checkpoints"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be >= 1; got {getattr(cfg, name)}")
    if cfg.learning_rate <= 0:
        raise ValueError(f"learning_rate must be > 0; got {cfg.learning_rate}")


def _check_or_write_config(cfg, write=True):
    path = os.path.join(cfg.model_dir, "config.json")
    current = dataclasses.asdict(cfg)
    if os.path.exists(path):
        with open(path) as f:
            previous = json.load(f)
        changed = [f"--{k}={previous.get(k)!r} before, {v!r} now" for k, v in current.items()
                   if k not in RESUMABLE_CHANGES and k != "model_dir" and previous.get(k) != v]
        if changed:
            raise ValueError(f"{cfg.model_dir} holds a run with other flags ({'; '.join(changed)}); "
                             "use the same flags to resume, or another --model_dir")
    if write:
        _atomic_write(path, json.dumps(current, indent=2, sort_keys=True) + "\n")


def _read_metrics(model_dir, completed_epochs):
    path = os.path.join(model_dir, "metrics.csv")
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        rows = [{k: (int(v) if k in ("epoch", "step") else float(v)) for k, v in r.items()} for r in csv.DictReader(f)]
    return [r for r in rows if r["epoch"] <= completed_epochs]


def _write_metrics(model_dir, history):
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=METRIC_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    _atomic_write(os.path.join(model_dir, "metrics.csv"), out.getvalue())


def confusion_matrix(labels, predictions, num_classes):
    """``[true, predicted]`` counts."""
    return np.bincount(np.asarray(labels) * num_classes + np.asarray(predictions),
                       minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def format_confusion(matrix, class_names):
    width = max(5, max(len(str(n)) for n in class_names) + 1, len(str(matrix.max())) + 1)
    header = " " * width + "".join(f"{str(n)[:width - 1]:>{width}}" for n in class_names)
    rows = [f"{str(n)[:width - 1]:>{width}}" + "".join(f"{c:>{width}}" for c in row)
            for n, row in zip(class_names, matrix)]
    return "\n".join([header] + rows)


def _write_confusion(model_dir, matrix, class_names):
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["true\\predicted", *class_names])
    for name, row in zip(class_names, matrix):
        writer.writerow([name, *row.tolist()])
    _atomic_write(os.path.join(model_dir, "confusion_matrix.csv"), out.getvalue())


def plot_history(model_dir, history):
    """loss.png and accuracy.png (train and test per epoch); [] without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    epochs = [r["epoch"] for r in history]
    paths = []
    for metric in ("loss", "accuracy"):
        fig, ax = plt.subplots(figsize=(6, 4))
        for split in ("train", "test"):
            ax.plot(epochs, [r[f"{split}_{metric}"] for r in history], marker="o", label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_title(f"{metric} per epoch")
        ax.grid(True, alpha=0.3)
        ax.legend()
        path = os.path.join(model_dir, f"{metric}.png")
        tmp = path + ".tmp.png"
        fig.savefig(tmp, dpi=100)
        plt.close(fig)
        os.replace(tmp, path)
        paths.append(path)
    return paths


def _atomic_write(path, text):
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def define_flags():
    from absl import flags
    from tfvgg.data import DATASETS
    from tfvgg.precision import PRECISIONS

    d = TrainConfig()
    flags.DEFINE_enum("model", d.model, configs.network_names(), "Network to train.", case_sensitive=False)
    flags.DEFINE_enum("dataset", d.dataset, list(DATASETS), "digits (ships with scikit-learn), mnist, "
                      "fashion_mnist (IDX files in --data_dir) or folder (one sub-folder per class).")
    flags.DEFINE_string("data_dir", d.data_dir, "Where the dataset's files are.")
    flags.DEFINE_integer("image_size", d.image_size, "Images are resized to this (e.g. 28 -> 224).", lower_bound=1)
    flags.DEFINE_integer("batch_size", d.batch_size, "Images per step.", lower_bound=1)
    flags.DEFINE_integer("epochs", d.epochs, "Passes over the training set.", lower_bound=1)
    flags.DEFINE_enum("optimizer", d.optimizer, list(OPTIMIZERS), "sgd (with --momentum) or adam.")
    flags.DEFINE_float("learning_rate", d.learning_rate, "Initial learning rate.", lower_bound=1e-12)
    flags.DEFINE_float("momentum", d.momentum, "SGD momentum (0 = plain SGD).", lower_bound=0.0, upper_bound=0.999)
    flags.DEFINE_float("weight_decay", d.weight_decay, "L2 weight decay (default: 5e-4 with sgd, 0 with adam).",
                       lower_bound=0.0)
    flags.DEFINE_float("keep_prob", d.keep_prob, "Dropout keep probability in training.", lower_bound=1e-6,
                       upper_bound=1.0)
    flags.DEFINE_enum("precision", d.precision, list(PRECISIONS), "Compute precision (variables stay float32).")
    flags.DEFINE_integer("plateau_patience", d.plateau_patience,
                         "Epochs without a better test loss before the learning rate drops (0 = never).",
                         lower_bound=0)
    flags.DEFINE_float("plateau_factor", d.plateau_factor, "Learning-rate factor on a plateau.", lower_bound=0.0,
                       upper_bound=1.0)
    flags.DEFINE_string("model_dir", d.model_dir, "Checkpoints, metrics, plots and TensorBoard files.")
    flags.DEFINE_integer("seed", d.seed, "Seed of initialization, shuffling and dropout.", lower_bound=0)
    flags.DEFINE_integer("train_subset", d.train_subset, "Train on the first N images only (0 = all).",
                         lower_bound=0)
    flags.DEFINE_integer("checkpoint_every", d.checkpoint_every, "Checkpoint every N steps (and every epoch).",
                         lower_bound=1)
    flags.DEFINE_integer("max_checkpoints", d.max_checkpoints, "Checkpoints kept.", lower_bound=1)
    flags.DEFINE_integer("log_every", d.log_every, "Progress line every N steps.", lower_bound=1)
    flags.DEFINE_boolean("deterministic", d.deterministic, "Make every op deterministic (bit-identical reruns).")
    flags.DEFINE_enum("strategy", d.strategy, list(STRATEGIES), "default (one device), mirrored (local GPUs or "
                      "--cpu_replicas CPU devices), multi_worker (TF_CONFIG).")
    flags.DEFINE_integer("cpu_replicas", d.cpu_replicas, "With --strategy=mirrored and no GPU: logical CPU devices.",
                         lower_bound=0)
    flags.DEFINE_enum("conv_algorithm", d.conv_algorithm, list(CONV_ALGORITHMS), "3x3 convolutions: direct, "
                      "winograd2, winograd4 (Winograd forward and gradients) or auto (per layer shape).")


def main(argv):
    from absl import flags, logging
    from tfvgg.cli import fail

    logging.set_verbosity(logging.WARNING)  # TensorFlow's checkpoint saver logs at INFO on every save
    if len(argv) > 1:
        fail(f"unexpected arguments: {' '.join(argv[1:])}", argv)
    values = {f.name: getattr(flags.FLAGS, f.name) for f in dataclasses.fields(TrainConfig)}
    values["model"] = configs.get_network(values["model"]).name
    try:
        train(TrainConfig(**values))
    except (ValueError, FileNotFoundError, ImportError) as e:
        fail(e, argv)
    except NonFiniteLoss as e:
        print(f"train: stopped: {e}")
        return 1
    return 0


if __name__ == "__main__":
    from absl import app
    from tfvgg.cli import parse_flags_or_exit

    define_flags()
    app.run(main, flags_parser=parse_flags_or_exit)
