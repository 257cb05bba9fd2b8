"""The training loop: ``train(cfg)`` runs, or resumes, the run a ``TrainConfig`` describes.

    from tfvgg.trainer import TrainConfig, train
    final = train(TrainConfig(model="lenet", image_size=28, epochs=2, model_dir="runs/lenet"))

The parts: the configuration (``tfvgg.train_config``), the compiled steps
(``tfvgg.steps``), this loop, and what it leaves behind (``tfvgg.reporting``).
A checkpoint is written every ``checkpoint_every`` steps and after every
epoch; a rerun restores the latest, replays the epoch's shuffle from its seed,
skips the batches already done and ends bit-identical to an uninterrupted run.
"""
import math
import os
import shutil
import time

import tensorflow as tf

from tfvgg import configs, memory
from tfvgg.checkpoint import Checkpointer
from tfvgg.data.pipeline import batches
from tfvgg.data.sources import open_source
from tfvgg.distribute import is_chief, make_strategy, task
from tfvgg.network import inference_op
from tfvgg.optimizers import OPTIMIZERS
from tfvgg.params import ParamStore
from tfvgg.precision import DynamicLossScale
from tfvgg import reporting, serving
from tfvgg.steps import NonFiniteLoss, TrainState, evaluate, make_eval_step, make_train_step, network_fn
from tfvgg.summary import summary
from tfvgg.train_config import TrainConfig, check_config, check_or_write_config, preprocessing

__all__ = ["NonFiniteLoss", "TrainConfig", "Trainer", "train"]


def train(cfg, print_fn=print):
    """Run (or resume) the training ``cfg`` describes; returns the final metrics row as a dict."""
    return Trainer(cfg, print_fn).run()


class Trainer:
    """One run: its data, variables, optimizer and checkpoints, built from a ``TrainConfig``."""

    def __init__(self, cfg, print_fn=print):
        check_config(cfg)
        self.cfg, self.print = cfg, print_fn
        self.strategy = make_strategy(cfg.strategy, cfg.cpu_replicas)   # before TensorFlow runs any op
        self.chief = is_chief() if cfg.strategy == "multi_worker" else True
        tf.random.set_seed(cfg.seed)
        if cfg.deterministic:
            tf.config.experimental.enable_op_determinism()
        self.net = configs.get_network(cfg.model)
        self.channels = self.net.input_shape[2]
        self._open_data()
        self.replicas = self.strategy.num_replicas_in_sync
        if cfg.batch_size % self.replicas:
            raise ValueError(f"--batch_size={cfg.batch_size} does not split evenly over {self.replicas} replicas")
        if cfg.memory_check and not tf.config.list_physical_devices("GPU"):   # GPU memory is not host RAM
            self.check_memory()   # before config.json: a refused batch leaves the run directory free to retry
        os.makedirs(cfg.model_dir, exist_ok=True)
        check_or_write_config(cfg, write=self.chief)
        self.train_size = min(cfg.train_subset or math.inf, self.source.size("train"))
        # Full batches only (the batch size then is in the step's static shape, so tuned convolutions apply),
        # unless the set is smaller than a batch or bad images are skipped (then every image is counted).
        self.drop_remainder = not cfg.skip_bad_images and self.train_size >= cfg.batch_size
        self.steps_per_epoch = (self.train_size // cfg.batch_size if self.drop_remainder
                                else math.ceil(self.train_size / cfg.batch_size))
        self.total_steps = self.steps_per_epoch * cfg.epochs
        self._build_variables()
        logits = network_fn(self.p, self.net.name, self.num_classes, cfg.dtype, cfg.conv_algorithm)
        self.train_step = make_train_step(self.strategy, self.p, logits, self.optimizer, self.state, cfg.keep_prob,
                                          cfg.seed, self.loss_scale, cfg.micro_batch_size)
        self.eval_step = make_eval_step(logits, cfg.image_size, self.channels)
        worker = "" if self.chief else f".worker-{task()[1]}-"
        self.tensorboard = reporting.TensorBoardLog(os.path.join(cfg.model_dir, f"{worker}tensorboard"))

    def _open_data(self):
        """The source, its class count, the preprocessing and the evaluated splits (validation [, test])."""
        cfg = self.cfg
        self.source = open_source(cfg.dataset, cfg.data_dir, cfg.seed, cfg.validation_fraction)
        self.num_classes = cfg.num_classes or self.source.num_classes
        if self.num_classes < self.source.num_classes:
            raise ValueError(f"--num_classes={cfg.num_classes} but the data has {self.source.num_classes} classes")
        self.prep = preprocessing(cfg, self.channels, self.source.photographs)
        self.splits = [s for s in ("validation", "test") if self.source.size(s)]
        if "validation" not in self.splits:
            raise ValueError(f"{self.source.describe()} has no validation images: raise --validation_fraction")

    def check_memory(self):
        """Raise ``memory.InsufficientMemory`` (a ValueError, one line) if a training step at ``batch_size`` will
        not fit in this process's memory; returns its ``memory.Estimate``. An in-memory data set is loaded already,
        so the memory available leaves it out (a streamed one holds a bounded buffer)."""
        cfg = self.cfg
        local = len(self.strategy.extended.worker_devices) if self.replicas > 1 else 1
        model_summary = summary(self.net, (cfg.image_size, cfg.image_size, self.channels), self.num_classes,
                                print_fn=None)
        slots = {"adam": 2}.get(cfg.optimizer, 1 if cfg.momentum else 0)   # tfvgg.optimizers' slot variables
        return memory.check_fits(model_summary, cfg.batch_size * local // self.replicas, ["train"], cfg.dtype,
                                 cfg.conv_algorithm, optimizer_slots=slots, replicas=local,
                                 micro_batch_size=cfg.micro_batch_size * local)   # per replica, as in the step

    def _build_variables(self):
        """Store, optimizer slots, counters (mirrored under a strategy) and the checkpointer over all of them."""
        cfg = self.cfg
        with self.strategy.scope():
            self.p = ParamStore(seed=cfg.seed)
            inference_op(tf.zeros([1, cfg.image_size, cfg.image_size, self.channels]), self.p, 1.0, self.net.name,
                         self.num_classes)
            self.optimizer = make_optimizer(cfg)
            self.optimizer.build(self.p.trainable_variables)
            self.state = TrainState()
            self.loss_scale = DynamicLossScale() if cfg.precision == "fp16" else None
        extras = {"optimizer": self.optimizer, "state": self.state}
        if self.loss_scale:
            extras["loss_scale"] = self.loss_scale
        self.checkpoint_dir = os.path.join(cfg.model_dir, "checkpoints")
        # Every worker saves (saving is collective); only the chief keeps what it saved.
        self.save_dir = (self.checkpoint_dir if self.chief
                         else os.path.join(cfg.model_dir, f".worker-{task()[1]}-checkpoints"))
        self.checkpointer = Checkpointer(self.p, self.save_dir, cfg.max_checkpoints, **extras)
        self.best_dir = os.path.join(cfg.model_dir, serving.BEST_DIR if self.chief else f".worker-{task()[1]}-best")
        self.best = Checkpointer(self.p, self.best_dir, max_to_keep=1)
        if self.chief:
            serving.write_serving_info(cfg.model_dir, self.net.name, self.class_names, self.prep)

    def run(self):
        """Restore, train the remaining epochs, report; returns the last epoch's metrics row."""
        restored = self.checkpointer.restore(tf.train.latest_checkpoint(self.checkpoint_dir))
        step = int(self.state.step.numpy())
        if restored:
            self.print(f"Resumed from {restored} (step {step} of {self.total_steps})")
        self.print(self.describe())
        history = reporting.read_metrics(self.cfg.model_dir, completed_epochs=step // self.steps_per_epoch)
        for epoch in range(step // self.steps_per_epoch, self.cfg.epochs):
            step, seconds, seen = self.run_epoch(epoch, step)
            history.append(self.end_epoch(epoch, step, seconds, seen))
            if self.chief:
                reporting.write_metrics(self.cfg.model_dir, history)
            self.save(step, epoch)
        if not history:
            raise RuntimeError("no epoch ran")
        self.finish(history)
        return history[-1]

    @property
    def class_names(self):
        """The data's class names, then "class i" for any extra width --num_classes asked for."""
        names = self.source.class_names
        return names + tuple(f"class {i}" for i in range(len(names), self.num_classes))

    def describe(self):
        cfg, strategy = self.cfg, ""
        if self.replicas > 1 or cfg.strategy != "default":
            strategy = f", {self.replicas} replicas ({cfg.strategy})"
        augmentation = self.prep.augmentation.describe() if self.prep.augmentation else "resized, no augmentation"
        return (f"Training {self.net.description} on {self.source.describe()}: {self.train_size:,} train images at "
                f"{cfg.image_size}x{cfg.image_size}x{self.channels} ({augmentation}), {self.p.count_params():,} "
                f"parameters, {cfg.epochs} epochs of {self.steps_per_epoch} steps" + strategy)

    def batches(self, epoch, skip_batches):
        """The epoch's batches, shuffled by a seed of the epoch (so a resume replays them), split over replicas."""
        cfg = self.cfg
        ds = batches(self.source, "train", cfg.batch_size, self.prep, shuffle_seed=cfg.seed * 100003 + epoch,
                     skip_batches=skip_batches, limit=cfg.train_subset, skip_bad=cfg.skip_bad_images,
                     drop_remainder=self.drop_remainder)
        if cfg.strategy == "default":
            return ds
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        return self.strategy.experimental_distribute_dataset(ds.with_options(options))

    def run_epoch(self, epoch, step):
        """Train from global ``step`` to the end of ``epoch``; returns (step, seconds, images seen)."""
        cfg = self.cfg
        start, seen = time.perf_counter(), 0
        skip = step - epoch * self.steps_per_epoch
        for images, labels in self.named_errors("train", self.batches(epoch, skip_batches=skip)):
            loss, count = self.train_step(images, labels)
            loss = float(loss)
            if not math.isfinite(loss):
                raise NonFiniteLoss(f"loss is {loss} at step {step + 1}", epoch + 1, self.last_checkpoint)
            step += 1
            seen += int(count)
            if step % cfg.log_every == 0:
                rate = seen / (time.perf_counter() - start)
                eta = (self.total_steps - step) * cfg.batch_size / rate
                self.print(f"  step {step}/{self.total_steps} (epoch {epoch + 1}): loss {loss:.4f}, "
                           f"{rate:.0f} images/s, ETA {eta:.0f} s")
                self.tensorboard.step_loss(step, loss)
            if step % cfg.checkpoint_every == 0:
                self.save(step, epoch)
        missing = self.train_size - skip * cfg.batch_size - seen
        if cfg.skip_bad_images and missing > 0:
            self.print(f"  skipped {missing} undecodable image(s) this epoch")
        if step < (epoch + 1) * self.steps_per_epoch:   # batches lost to skipped images: the epoch still ends here
            step = (epoch + 1) * self.steps_per_epoch
            self.state.step.assign(step)
        return step, time.perf_counter() - start, seen

    def named_errors(self, split, dataset):
        """Iterate ``dataset``; an image that cannot be read stops the run with one line naming it."""
        iterator = iter(dataset)
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                return
            except (tf.errors.InvalidArgumentError, tf.errors.DataLossError, tf.errors.NotFoundError) as e:
                where = self.source.locate_bad(split) or e.message.splitlines()[0]
                raise ValueError(f"{split} data: {where} (--skip_bad_images skips and counts such images)") from None
            yield batch

    def evaluate(self, split):
        """(mean loss, accuracy, predictions, labels) of the current weights on ``split``."""
        ds = batches(self.source, split, self.cfg.batch_size, self.prep, skip_bad=self.cfg.skip_bad_images)
        return evaluate(self.eval_step, self.named_errors(split, ds))

    def end_epoch(self, epoch, step, seconds, seen):
        """Evaluate, print and log the epoch, apply the plateau rule, keep the best weights; returns its row."""
        row = {"epoch": epoch + 1, "step": step}
        row["train_loss"], row["train_accuracy"] = self.state.epoch_means()
        for split in ("validation", "test"):
            loss, accuracy = self.evaluate(split)[:2] if split in self.splits else (math.nan, math.nan)
            row[f"{split}_loss"], row[f"{split}_accuracy"] = loss, accuracy
        row.update(learning_rate=float(self.optimizer.learning_rate.numpy()), seconds=seconds,
                   images_per_sec=seen / seconds if seconds > 0 else 0.0)
        self.print(f"epoch {epoch + 1}/{self.cfg.epochs}: " + "; ".join(
            f"{split} loss {row[f'{split}_loss']:.4f} accuracy {row[f'{split}_accuracy']:.4f}"
            for split in ("train", *self.splits)) + f"; lr {row['learning_rate']:g}; {row['images_per_sec']:.0f} images/s")
        self.tensorboard.epoch(row)
        improved = self.state.end_epoch(row["validation_loss"], self.optimizer, self.cfg.plateau_patience,
                                        self.cfg.plateau_factor)
        if improved:   # every worker saves (saving is collective); only the chief keeps it
            self.best.save(step)
            if not self.chief:
                shutil.rmtree(self.best_dir, ignore_errors=True)
        return row

    @property
    def last_checkpoint(self):
        return tf.train.latest_checkpoint(self.checkpoint_dir)

    def save(self, step, epoch):
        """Checkpoint, unless an update overflowed (a finite loss can still leave inf weights behind)."""
        if not all(bool(tf.reduce_all(tf.math.is_finite(v))) for v in self.p.params):
            raise NonFiniteLoss(f"weights are not finite after step {step}", epoch + 1, self.last_checkpoint)
        self.checkpointer.save(step)
        if not self.chief:
            shutil.rmtree(self.save_dir, ignore_errors=True)

    def finish(self, history):
        """Print the confusion matrix (test split, else validation) and the weights' checksum; the chief writes
        the matrix and the plots."""
        split = self.splits[-1]
        _, _, predictions, labels = self.evaluate(split)
        names = self.class_names
        matrix = reporting.confusion_matrix(labels, predictions, self.num_classes)
        self.print(f"Confusion matrix, {split} images (rows: true class, columns: predicted):")
        self.print(reporting.format_confusion(matrix, names))
        self.print(f"Weights checksum: {reporting.weights_checksum(self.p)}")
        if not self.chief:
            return
        model_dir = self.cfg.model_dir
        reporting.write_confusion(model_dir, matrix, names)
        plots = reporting.plot_history(model_dir, history)
        self.print(f"Metrics: {os.path.join(model_dir, 'metrics.csv')}; best weights (lowest validation loss): "
                   f"{self.best.latest}; TensorBoard: {self.tensorboard.directory}"
                   + (f"; plots: {', '.join(plots)}" if plots else " (install matplotlib for PNG plots)"))


def make_optimizer(cfg):
    """The optimizer ``cfg`` names; SGD's weight decay defaults to the paper's 5e-4, Adam's to 0."""
    if cfg.optimizer == "sgd":
        decay = 5e-4 if cfg.weight_decay is None else cfg.weight_decay
        return OPTIMIZERS["sgd"](cfg.learning_rate, cfg.momentum, decay)
    return OPTIMIZERS["adam"](cfg.learning_rate, weight_decay=cfg.weight_decay or 0.0)
