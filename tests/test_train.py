"""Training: it learns, it stops on NaN, it survives SIGKILL, it leaves metrics, plots and events behind."""
import csv
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

import tfvgg
from tfvgg import checkpoint
from tfvgg.trainer import NonFiniteLoss, TrainConfig, train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": REPO}


def quick(model_dir, **overrides):
    """LeNet on 300 digits: two epochs in a few seconds. Not deterministic in-process (that switch is global)."""
    values = dict(model="lenet", image_size=28, batch_size=20, epochs=2, learning_rate=1e-3, train_subset=300,
                  model_dir=str(model_dir), deterministic=False, log_every=5, checkpoint_every=10)
    values.update(overrides)
    return TrainConfig(**values)


def read_metrics(model_dir):
    with open(os.path.join(model_dir, "metrics.csv"), newline="") as f:
        return list(csv.DictReader(f))


def tensorboard_scalars(log_dir):
    """``{run: {tag: [(step, value), ...]}}`` read back with TensorBoard's own event reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    curves = {}
    for run in sorted(os.listdir(log_dir)):
        events = EventAccumulator(str(log_dir / run))
        events.Reload()
        curves[run] = {tag: [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in events.Tensors(tag)]
                       for tag in events.Tags()["tensors"]}
    return curves


def test_two_epochs_learn_and_leave_everything_behind(tmp_path):
    lines = []
    final = train(quick(tmp_path), print_fn=lines.append)
    rows = read_metrics(str(tmp_path))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert set(rows[0]) >= {"epoch", "train_loss", "train_accuracy", "validation_loss", "validation_accuracy",
                            "test_loss", "test_accuracy"}
    assert float(rows[1]["train_loss"]) < float(rows[0]["train_loss"])
    assert final["test_accuracy"] > 0.3   # chance is 0.1
    assert any("images/s, ETA" in l for l in lines) and any("Confusion matrix" in l for l in lines)
    with open(tmp_path / "confusion_matrix.csv") as f:
        matrix = np.array([row[1:] for row in csv.reader(f)][1:], dtype=int)
    assert matrix.shape == (10, 10) and matrix.sum() == 359
    assert round(np.trace(matrix) / matrix.sum(), 4) == round(final["test_accuracy"], 4)
    curves = tensorboard_scalars(tmp_path / "tensorboard")
    assert set(curves) == {"train", "validation", "test"}   # one run per split, the same tags: curves overlay
    assert all({"loss", "accuracy"} <= set(curves[split]) for split in curves)
    assert {"learning_rate", "images_per_sec", "step_loss"} <= set(curves["train"])
    for split in ("train", "validation", "test"):
        for metric in ("loss", "accuracy"):
            steps, values = zip(*curves[split][metric])
            assert list(steps) == [int(r["step"]) for r in rows]
            assert list(values) == pytest.approx([float(r[f"{split}_{metric}"]) for r in rows], rel=1e-5)
    pytest.importorskip("matplotlib")
    for name in ("loss.png", "accuracy.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    # A finite loss can still overflow the weights; the guard refuses to checkpoint them.
    cfg = quick(tmp_path, optimizer="sgd", momentum=0.0, learning_rate=1e30, checkpoint_every=1)
    with pytest.raises(NonFiniteLoss, match="(loss is nan at step|weights are not finite after step) 2 ") as error:
        train(cfg, print_fn=lambda *_: None)
    latest = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
    assert latest is not None and latest in str(error.value)
    p = tfvgg.ParamStore()
    tfvgg.Checkpointer(p, str(tmp_path / "checkpoints")).restore()
    assert all(np.isfinite(v.numpy()).all() for v in p.params)


def test_resume_refuses_other_flags(tmp_path):
    train(quick(tmp_path, epochs=1), print_fn=lambda *_: None)
    with pytest.raises(ValueError, match="--batch_size=20 before, 10 now"):
        train(quick(tmp_path, epochs=2, batch_size=10), print_fn=lambda *_: None)
    lines = []
    train(quick(tmp_path, epochs=2), print_fn=lines.append)   # more epochs may be asked for
    assert lines[0].startswith("Resumed from") and len(read_metrics(str(tmp_path))) == 2


TRAIN_FLAGS = ["--model=lenet", "--image_size=28", "--batch_size=16", "--epochs=2", "--learning_rate=0.001",
               "--checkpoint_every=10", "--log_every=1000"]


def run_train(model_dir, wait=True):
    command = [sys.executable, "-m", "tfvgg.train", *TRAIN_FLAGS, f"--model_dir={model_dir}"]
    if wait:
        return subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    return subprocess.Popen(command, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.slow
def test_sigkill_then_rerun_ends_bit_identical_to_an_uninterrupted_run(tmp_path):
    killed_dir, clean_dir = tmp_path / "killed", tmp_path / "clean"
    process = run_train(killed_dir, wait=False)
    index = killed_dir / "checkpoints" / "checkpoint"
    deadline = time.time() + 240
    while not index.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    resumed = run_train(killed_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert "Resumed from" in resumed.stdout
    step = int(resumed.stdout.split("(step ")[1].split(" ")[0])
    assert 0 < step < 160   # 2 epochs of 1294 // 16 = 80 full batches (144 of the 1,438 held out for validation)
    clean = run_train(clean_dir)
    assert clean.returncode == 0, clean.stderr
    columns = ("epoch", "step", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "learning_rate")
    assert [[r[c] for c in columns] for r in read_metrics(str(killed_dir))] == \
        [[r[c] for c in columns] for r in read_metrics(str(clean_dir))]
    a = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(killed_dir / "checkpoints")))
    b = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(clean_dir / "checkpoints")))
    names = checkpoint.stored_param_shapes(tf.train.latest_checkpoint(str(clean_dir / "checkpoints")))
    for name in names:
        np.testing.assert_array_equal(a.get_tensor(checkpoint._key(name)), b.get_tensor(checkpoint._key(name)))
    evaluated = subprocess.run([sys.executable, "-m", "tfvgg.evaluate", f"--model_dir={clean_dir}",
                                "--checkpoint=latest"], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert evaluated.returncode == 0, evaluated.stderr
    assert f"test accuracy {float(read_metrics(str(clean_dir))[-1]['test_accuracy']):.4f}" in evaluated.stdout


def test_cli_errors_exit_2(tmp_path):
    no_dir = subprocess.run([sys.executable, "-m", "tfvgg.train", "--dataset=mnist", f"--model_dir={tmp_path}"],
                            cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert no_dir.returncode == 2 and "--dataset=mnist needs --data_dir" in no_dir.stderr
    assert "Traceback" not in no_dir.stderr
    bad_precision = subprocess.run([sys.executable, "-m", "tfvgg.train", "--conv_algorithm=winograd4",
                                    "--precision=fp16", f"--model_dir={tmp_path / 'fp16'}"],
                                   cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert bad_precision.returncode == 2 and "winograd4 in float16 loses" in bad_precision.stderr
    assert "Traceback" not in bad_precision.stderr and not (tmp_path / "fp16").exists()   # nothing written
    no_run = subprocess.run([sys.executable, "-m", "tfvgg.evaluate", f"--model_dir={tmp_path / 'nothing'}"],
                            cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert no_run.returncode == 2 and "no config.json" in no_run.stderr


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_training_keeps_float32_weights(tmp_path, precision):
    final = train(quick(tmp_path, precision=precision, epochs=1, train_subset=100), print_fn=lambda *_: None)
    assert np.isfinite(final["train_loss"]) and final["train_loss"] < 2.5
    p = tfvgg.ParamStore()
    tfvgg.Checkpointer(p, str(tmp_path / "checkpoints")).restore()
    assert all(v.dtype == tf.float32 for v in p.params)
    saved = [name for name, _ in tf.train.list_variables(str(tmp_path / "checkpoints"))]
    assert any(name.startswith("loss_scale/") for name in saved) == (precision == "fp16")


@pytest.mark.slow   # XLA compiles every layer shape's Winograd forward and gradients: about a minute
def test_winograd_training_follows_the_direct_one(tmp_path):
    """Same seed and data: Winograd forward and gradients give the direct run's losses and weights.

    SGD, not Adam: Adam divides by the gradients' size, so where they are ~0 rounding picks the step's sign.
    """
    finals, weights = {}, {}
    for algorithm in ("direct", "winograd4"):
        cfg = quick(tmp_path / algorithm, model="vgg11_small", image_size=32, batch_size=16, epochs=1,
                    train_subset=64, keep_prob=1.0, optimizer="sgd", learning_rate=0.01, conv_algorithm=algorithm)
        finals[algorithm] = train(cfg, print_fn=lambda *_: None)
        p = tfvgg.ParamStore()
        tfvgg.Checkpointer(p, str(tmp_path / algorithm / "checkpoints")).restore()
        weights[algorithm] = {v.name: v.numpy() for v in p.params}
    assert finals["winograd4"]["train_loss"] == pytest.approx(finals["direct"]["train_loss"], rel=1e-4)
    initial = tfvgg.ParamStore(seed=0)   # what train() starts from
    tfvgg.inference_op(tf.zeros([1, 32, 32, 1]), initial, 1.0, "vgg11_small", 10)
    # Weights only: on the digits' blank background the direct y is exactly 0 where F(4x4) gives ~1e-5, so
    # relu's mask (y > 0) differs there and the first layers' bias gradients with it (17-24% in one step);
    # the weight gradients do not see it (the inputs there are 0).
    for v in initial.params[::2]:
        assert v.name.endswith("_w:0")
        step_direct = weights["direct"][v.name] - v.numpy()
        step_winograd = weights["winograd4"][v.name] - v.numpy()
        assert np.linalg.norm(step_direct) > 0
        # The training moved every tensor the same way, to 1% of how far it moved.
        assert np.linalg.norm(step_winograd - step_direct) < 0.01 * np.linalg.norm(step_direct), v.name
    with pytest.raises(ValueError, match="conv_algorithm must be one of"):
        train(quick(tmp_path / "bad", conv_algorithm="fft"))


def test_micro_batches_train_as_the_whole_batch(tmp_path):
    """Batch 20 as micro-batches of 7, 7 and 6 (no dropout): the same losses and weights as all 20 at once."""
    weights = {}
    for micro in (0, 7):
        cfg = quick(tmp_path / str(micro), epochs=1, train_subset=100, keep_prob=1.0, optimizer="sgd",
                    learning_rate=0.05, micro_batch_size=micro)
        final = train(cfg, print_fn=lambda *_: None)
        p = tfvgg.ParamStore()
        tfvgg.Checkpointer(p, str(tmp_path / str(micro) / "checkpoints")).restore()
        weights[micro] = (final["train_loss"], [v.numpy() for v in p.params])
    assert weights[7][0] == pytest.approx(weights[0][0], rel=1e-4)
    for micro_batched, whole in zip(weights[7][1], weights[0][1]):
        np.testing.assert_allclose(micro_batched, whole, rtol=1e-3, atol=1e-5)
