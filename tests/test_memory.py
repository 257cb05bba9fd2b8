"""Memory pre-flight (tfvgg.memory): the estimate's shape, the check's one line, memory available from /proc and
cgroup files, and the benchmark refusing a batch that cannot fit."""
import dataclasses
import os
import subprocess
import sys

import pytest
import tensorflow as tf

import tfvgg
from tfvgg import memory

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GIB = 2 ** 30


@pytest.fixture(scope="module")
def vgg16():
    return tfvgg.summary("D", print_fn=None)


def total(summary, batch, pass_name="forward_backward", algorithm="direct", **options):
    return memory.estimate_bytes(summary, batch, pass_name, tf.float32, algorithm, **options).total


@pytest.mark.parametrize("pass_name", memory.PASSES)
def test_estimate_grows_linearly_with_the_batch(vgg16, pass_name):
    steps = [total(vgg16, b, pass_name) for b in (100, 200, 300)]
    assert steps[1] - steps[0] == steps[2] - steps[1] > 0


def test_passes_in_order_of_what_they_keep(vgg16):
    assert total(vgg16, 32, "forward") < total(vgg16, 32, "forward_backward") < total(vgg16, 32, "train")
    assert total(vgg16, 32, "train", optimizer_slots=2) > total(vgg16, 32, "train", optimizer_slots=1)


@pytest.mark.parametrize("pass_name", memory.PASSES)
@pytest.mark.parametrize("algorithm", ["winograd2", "winograd4", "auto"])
def test_winograd_needs_more_than_direct(vgg16, pass_name, algorithm):
    assert total(vgg16, 32, pass_name, algorithm) > total(vgg16, 32, pass_name)


def test_winograd_applies_to_3x3_stride_1_layers_only():
    alexnet = tfvgg.summary("alexnet", print_fn=None)
    names = [row.name for row, _, _ in memory.winograd_layers(alexnet, "winograd4", tf.float32, "train")]
    assert names and "conv1" not in names and "conv2" not in names   # 11x11 stride 4, 5x5


def test_parts_add_up_and_creating_the_variables_can_dominate(vgg16):
    small = memory.estimate_bytes(vgg16, 1, "forward", tf.float32)
    assert dict(small.parts())["creating the variables"] == 2 * 25088 * 4096 * 4   # fc6/w, twice
    big = memory.estimate_bytes(vgg16, 64, "train", tf.float32, extras={"probe": 10})
    labels = dict(big.parts())
    assert {"runtime", "parameters", "gradients", "optimizer slots", "activations", "probe"} <= set(labels)
    for e in (small, big):
        assert sum(b for _, b in e.parts()) == e.total


def test_mixed_precision_halves_activations_and_adds_a_weight_copy(vgg16):
    fp32 = dict(memory.estimate_bytes(vgg16, 32, "forward_backward", tf.float32).parts())
    bf16 = dict(memory.estimate_bytes(vgg16, 32, "forward_backward", tf.bfloat16).parts())
    assert bf16["activations"] * 2 == fp32["activations"]
    assert bf16["bfloat16 weights"] * 2 == bf16["parameters"] == fp32["parameters"]


@pytest.mark.parametrize("pass_name", memory.PASSES)
@pytest.mark.parametrize("batch", [1, 7, 32, 500])
def test_largest_batch_round_trips(vgg16, pass_name, batch):
    needed = total(vgg16, batch, pass_name, "winograd4")
    fits = memory.largest_batch(vgg16, pass_name, tf.float32, needed, "winograd4")
    assert total(vgg16, fits, pass_name, "winograd4") <= needed < total(vgg16, fits + 1, pass_name, "winograd4")
    estimate = memory.estimate_bytes(vgg16, batch, pass_name, tf.float32, "winograd4")
    if estimate.working_set > estimate.initialization:   # the pass, not creating the variables, sets the peak
        assert fits == batch
        assert memory.largest_batch(vgg16, pass_name, tf.float32, needed - 1, "winograd4") == batch - 1


def test_micro_batches_hold_one_micro_batch_of_activations(vgg16):
    whole = dict(memory.estimate_bytes(vgg16, 32, "train", tf.float32).parts())
    micro = memory.estimate_bytes(vgg16, 32, "train", tf.float32, micro_batch_size=4)
    parts = dict(micro.parts())
    assert parts["activations"] * 8 == whole["activations"]
    assert parts["gradient sums"] == whole["gradients"] == vgg16.total_params * 4
    assert parts["images"] == 32 * 2 * 224 * 224 * 3 * 4   # the batch as fed and stacked by micro-batch
    assert micro.total < sum(whole.values())
    # nothing is split by a micro-batch no smaller than the batch, nor in the forward pass
    assert total(vgg16, 32, micro_batch_size=32) == total(vgg16, 32)
    assert total(vgg16, 32, "forward", micro_batch_size=4) == total(vgg16, 32, "forward")


@pytest.mark.parametrize("micro", [1, 4, 16])
def test_largest_batch_and_micro_batch_round_trip(vgg16, micro):
    available = total(vgg16, 48, micro_batch_size=micro)
    assert memory.largest_micro_batch(vgg16, 48, "forward_backward", tf.float32, available) == micro
    assert memory.largest_micro_batch(vgg16, 48, "forward_backward", tf.float32, available - 1) == micro - 1
    assert memory.largest_batch(vgg16, "forward_backward", tf.float32, available, micro_batch_size=micro) == 48


def test_check_fits_suggests_micro_batches(vgg16):
    available = total(vgg16, 40, micro_batch_size=6)   # the forward pass (not split) fits
    with pytest.raises(memory.InsufficientMemory, match="; this batch fits in micro-batches of up to about 6 images$"):
        memory.check_fits(vgg16, 40, ["forward", "forward_backward"], tf.float32, available=available)
    memory.check_fits(vgg16, 40, ["forward", "forward_backward"], tf.float32, available=available,
                      micro_batch_size=6)


def test_check_fits_passes_what_fits(vgg16):
    estimate = memory.check_fits(vgg16, 8, ["forward", "forward_backward"], tf.float32, available=100 * GIB)
    assert estimate.pass_name == "forward_backward" and estimate.total < 100 * GIB


def test_check_fits_refuses_with_one_line(vgg16):
    with pytest.raises(memory.InsufficientMemory) as raised:
        memory.check_fits(vgg16, 100000, ["forward", "forward_backward"], tf.float32, available=22 * GIB)
    message = str(raised.value)
    assert "\n" not in message and isinstance(raised.value, ValueError)
    assert message.startswith("VGG-16 forward-backward at batch 100000 needs about ")
    assert "activations" in message and "; 22.0 GiB available; " in message
    fits = memory.largest_batch(vgg16, "forward_backward", tf.float32, 22 * GIB)
    assert message.endswith(f"the largest batch that fits is about {fits:,}") and fits > 100


def test_check_fits_says_when_not_even_one_image_fits(vgg16):
    with pytest.raises(memory.InsufficientMemory, match="even batch 1 does not fit$"):
        memory.check_fits(vgg16, 2, ["forward"], tf.float32, available=GIB)


def test_check_fits_skips_where_memory_is_unknown(vgg16, monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: None)
    assert memory.check_fits(vgg16, 10 ** 9, ["train"], tf.float32).batch_size == 10 ** 9


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_available_bytes_on_linux():
    available = memory.available_bytes()
    assert isinstance(available, int) and available > 0


def fake_system(tmp_path, monkeypatch, meminfo, cgroup_line, files):
    """/proc/meminfo, /proc/self/cgroup and a cgroup tree under tmp_path: ``files`` maps paths to contents."""
    (tmp_path / "meminfo").write_text(meminfo)
    (tmp_path / "cgroup").write_text(cgroup_line)
    for relative, text in files.items():
        path = tmp_path / "fs" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    monkeypatch.setattr(memory, "PROC_MEMINFO", str(tmp_path / "meminfo"))
    monkeypatch.setattr(memory, "PROC_CGROUP", str(tmp_path / "cgroup"))
    monkeypatch.setattr(memory, "CGROUP_ROOT", str(tmp_path / "fs"))


MEMINFO = "MemTotal:       32000000 kB\nMemFree:  1000 kB\nMemAvailable:   20000000 kB\n"


def test_cgroup_v2_limit_counts(tmp_path, monkeypatch):
    fake_system(tmp_path, monkeypatch, MEMINFO, "0::/job/step\n", {
        "job/step/memory.max": "max\n", "job/step/memory.current": "123\n",
        "job/memory.max": f"{4 * GIB}\n", "job/memory.current": f"{GIB}\n"})
    assert memory.available_bytes() == 3 * GIB   # the parent's limit binds; "max" is no limit


def test_cgroup_v1_limit_counts(tmp_path, monkeypatch):
    fake_system(tmp_path, monkeypatch, MEMINFO, "5:cpu,cpuacct:/\n4:memory:/box\n", {
        "memory/box/memory.limit_in_bytes": f"{2 * GIB}\n", "memory/box/memory.usage_in_bytes": f"{GIB // 2}\n",
        "memory/memory.limit_in_bytes": "9223372036854771712\n", "memory/memory.usage_in_bytes": "5\n"})
    assert memory.available_bytes() == GIB + GIB // 2


def test_meminfo_binds_below_a_loose_cgroup_limit(tmp_path, monkeypatch):
    fake_system(tmp_path, monkeypatch, MEMINFO, "0::/\n", {"memory.max": f"{100 * GIB}", "memory.current": "0"})
    assert memory.available_bytes() == 20000000 * 1024


def test_garbage_in_the_files_is_ignored(tmp_path, monkeypatch):
    fake_system(tmp_path, monkeypatch, "MemAvailable: lots kB\n\x00\xff", "garbage\n0::/x\n", {
        "x/memory.max": "-", "x/memory.current": "12", "memory.max": "\x00\x01", "memory.current": ""})
    assert memory.available_bytes() is None
    (tmp_path / "meminfo").write_text(MEMINFO)
    assert memory.available_bytes() == 20000000 * 1024


def test_missing_files_mean_unknown(tmp_path, monkeypatch):
    monkeypatch.setattr(memory, "PROC_MEMINFO", str(tmp_path / "none"))
    monkeypatch.setattr(memory, "PROC_CGROUP", str(tmp_path / "none"))
    monkeypatch.setattr(memory, "CGROUP_ROOT", str(tmp_path / "none"))
    assert memory.available_bytes() is None



def test_benchmark_check_counts_the_probe_and_the_peers(vgg16, monkeypatch):
    from benchmarks import cnn, contestants
    workload = contestants.Workload(model="D", batch_size=16, image_size=224, channels=3, num_classes=1000,
                                    data_format="NHWC", precision="fp32", xla=False, conv_algorithm="direct")
    strategy = tf.distribute.get_strategy()
    monkeypatch.setattr(memory, "available_bytes", lambda: 100 * GIB)
    alone = cnn.check_memory(workload, vgg16, ["forward_backward"], [], strategy)
    both = cnn.check_memory(workload, vgg16, ["forward_backward"], ["keras", "tf1"], strategy)
    assert dict(alone.parts())["matmul probe"] == 3 * 4096 ** 2 * 4
    assert both.total - alone.total == 2 * vgg16.total_params * 4
    monkeypatch.setattr(memory, "available_bytes", lambda: 2 * GIB)
    with pytest.raises(memory.InsufficientMemory, match="at batch 16 needs about .*; 2.0 GiB available; "):
        cnn.check_memory(workload, vgg16, ["forward"], [], strategy)


def test_out_of_memory_while_building_is_one_line(monkeypatch):
    from benchmarks import contestants, measure

    def exhausted(*args, **kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")
    monkeypatch.setattr(contestants, "tfvgg_passes", exhausted)
    workload = contestants.Workload(model="D", batch_size=4, image_size=32, channels=3, num_classes=10,
                                    data_format="NHWC", precision="fp32", xla=False, conv_algorithm="direct")
    out = measure.run_benchmark(workload, tfvgg.summary("D", (32, 32, 3), 10, print_fn=None),
                                {"num_batches": 1, "num_warmup_batches": 1}, ["forward"], [], display_every=1,
                                print_fn=lambda *_: None, probe_size=64)
    assert out["error"] == ("out of memory on CPU:0 while building the contestants with --batch_size=4; "
                            "try --batch_size=2, --micro_batch_size=2 (gradients) or --precision=bf16/fp16")
    assert "forward" not in out


def test_trainer_refuses_a_batch_that_cannot_fit_before_writing_anything(tmp_path, monkeypatch):
    from tfvgg.trainer import TrainConfig, Trainer
    cfg = TrainConfig(model="vgg11_small", image_size=32, batch_size=4096, model_dir=str(tmp_path / "run"))
    monkeypatch.setattr(memory, "available_bytes", lambda: GIB)
    with pytest.raises(memory.InsufficientMemory, match=r"^VGG-11 .* train at batch 4096 needs about .*; "
                                                        r"1.0 GiB available; the largest batch that fits is about"):
        Trainer(cfg, print_fn=lambda *_: None)
    assert not (tmp_path / "run").exists()   # a retry with a smaller batch is not refused as a changed run
    trainer = Trainer(dataclasses.replace(cfg, memory_check=False), print_fn=lambda *_: None)
    monkeypatch.setattr(memory, "available_bytes", lambda: 100 * GIB)
    slots = dict(trainer.check_memory().parts())["optimizer slots"]   # Adam: two per parameter
    assert slots == 2 * trainer.p.count_params() * 4

@pytest.mark.slow
def test_benchmark_refuses_a_batch_that_cannot_fit():
    result = subprocess.run([sys.executable, "-m", "benchmarks.vgg16", "--batch_size=100000"], cwd=REPO,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": REPO},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    error_lines = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(error_lines) == 1 and "largest batch" in error_lines[0], result.stderr
    assert "Traceback" not in result.stderr and "Probing" not in result.stdout
