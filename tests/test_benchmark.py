"""The benchmark: statistics on a fake clock, flag errors, tiny end-to-end runs of every pass and precision."""
import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import tfvgg
from benchmarks import cnn, contestants, results as benchmark_results, timing
from tfvgg.ops import nchw_supported
from tfvgg.precision import DynamicLossScale

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class FakeClock:
    """Each contestant call advances time by its next scripted duration."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def scripted(clock, durations, calls, name):
    durations = iter(durations)

    def run():
        calls.append(name)
        clock.now += next(durations)
    return run


def test_statistics_on_a_fake_clock():
    clock, calls = FakeClock(), []
    runs = {"a": scripted(clock, [9.0, 9.0, 1.0, 2.0, 3.0, 4.0], calls, "a"),
            "b": scripted(clock, [9.0, 9.0, 0.5, 0.5, 0.5, 0.5], calls, "b")}
    result = timing.time_contestants(runs, num_batches=4, num_warmup_batches=2, clock=clock, print_fn=None)
    assert calls == ["a", "b"] * 2 + ["a", "b", "b", "a"] * 2  # warm-up, then interleaved and rotated
    assert result["a"].durations == [1.0, 2.0, 3.0, 4.0]   # every timed batch, no warm-up
    assert result["a"].mean == 2.5
    assert result["a"].sd == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    assert result["b"].mean == 0.5 and result["b"].sd == 0.0


def test_sd_of_identical_durations_is_exactly_zero():
    # E[x^2] - mean^2 gives a tiny negative variance here (and sqrt fails); two passes cannot.
    t = timing.Timing([0.1] * 3 + [0.1 + 1e-17] * 97)
    assert t.sd >= 0.0 and t.sd < 1e-15
    naive = sum(d * d for d in t.durations) / t.count - t.mean ** 2
    assert naive != 0.0  # the classic formula's rounding error, for the record


def test_progress_lines_and_eta():
    clock, lines = FakeClock(), []
    runs = {"x": scripted(clock, [2.0] * 5, [], "x")}
    timing.time_contestants(runs, num_batches=5, clock=clock, log_every=2, print_fn=lines.append)
    assert lines == ["step 2/5: x 2.000 s; elapsed 4.0 s, ETA 6.0 s",
                     "step 4/5: x 2.000 s; elapsed 8.0 s, ETA 2.0 s",
                     "step 5/5: x 2.000 s; elapsed 10.0 s, ETA 0.0 s"]


def test_num_batches_must_be_positive():
    with pytest.raises(ValueError, match="num_batches must be >= 1"):
        timing.time_contestants({"x": lambda: None}, num_batches=0)


def test_every_parameter_gets_a_gradient():
    p = tfvgg.ParamStore()
    images = tf.random.stateless_normal([2, 32, 32, 3], seed=(0, 0))
    tfvgg.inference_op(images, p, config="D")
    with tf.GradientTape() as tape:
        loss = tf.nn.l2_loss(tfvgg.inference_op(images, p, 0.5, "D")[2])
    grads = tape.gradient(loss, p.params)
    assert len(grads) == len(p.params) == 32
    assert all(g is not None and float(tf.reduce_sum(tf.abs(g))) > 0 for g in grads)
    contestants.check_gradients(grads, p.names)
    with pytest.raises(RuntimeError, match="gradients missing for \\['conv1_1/b'\\]"):
        contestants.check_gradients([grads[0], None], p.names[:2])
    with pytest.raises(RuntimeError, match="every parameter"):
        contestants.check_gradients([], [])


def test_dynamic_loss_scale():
    ls = DynamicLossScale(initial_scale=8.0, growth_steps=2)
    grads, finite = ls.unscale([tf.constant([8.0, 16.0])])
    np.testing.assert_array_equal(grads[0].numpy(), [1.0, 2.0])
    assert bool(finite)
    ls.update(finite)
    assert float(ls.scale) == 8.0
    ls.update(tf.constant(True))
    assert float(ls.scale) == 16.0                      # grew after 2 finite steps
    _, finite = ls.unscale([tf.constant([np.inf], tf.float16)])
    assert not bool(finite)
    ls.update(finite)
    assert float(ls.scale) == 8.0 and int(ls.finite_steps) == 0


def tiny(precision="fp32", data_format="NHWC", xla=False, model="D", image_size=32):
    net = tfvgg.get_network(model)
    return contestants.Workload(model=net.name, batch_size=2, image_size=image_size, channels=net.input_shape[2],
                                num_classes=10, data_format=data_format, precision=precision, xla=xla)


def run_tiny(workload, passes, peers=(), probe_size=128, profile_dir=None):
    s = tfvgg.summary(workload.model, (workload.image_size, workload.image_size, workload.channels),
                      workload.num_classes, print_fn=None)
    return cnn.run_benchmark(workload, s, {"num_batches": 1, "num_warmup_batches": 1}, passes, list(peers),
                             display_every=1, print_fn=lambda *_: None, probe_size=probe_size,
                             profile_dir=profile_dir)


PASS_FIELDS = {"seconds_per_batch_mean", "seconds_per_batch_sd", "images_per_sec", "tflops", "peak_fraction"}


@pytest.mark.parametrize("precision", ["fp32", "bf16",
                                       # fp16 convolutions have no fast CPU kernel: about a minute for three networks
                                       pytest.param("fp16", marks=pytest.mark.slow)])
def test_tiny_run_of_every_pass_with_both_peers(precision):
    results = run_tiny(tiny(precision), list(contestants.PASSES), peers=["keras", "tf1"])
    for pass_name in contestants.PASSES:
        assert PASS_FIELDS <= set(results[pass_name])
        assert results[pass_name]["images_per_sec"] > 0
        for peer in ("keras", "tf1"):
            entry = results["compare"][peer][pass_name]
            assert entry["ratio"] == pytest.approx(results[pass_name]["images_per_sec"] / entry["images_per_sec"])
    assert results["skipped"] == {}
    assert results["peak_tflops"] > 0


def test_tiny_run_in_micro_batches():
    w = dataclasses.replace(tiny(model="lenet", image_size=28), batch_size=5, micro_batch_size=2)
    results = run_tiny(w, ["forward_backward", "train"])
    assert PASS_FIELDS <= set(results["forward_backward"]) and PASS_FIELDS <= set(results["train"])


@pytest.mark.skipif(not nchw_supported(), reason="this TensorFlow has no NCHW conv/pool kernel on this CPU")
def test_tiny_run_nchw_xla_and_a_model_keras_lacks():
    results = run_tiny(tiny(data_format="NCHW", xla=True, model="A-LRN"), ["forward", "forward_backward"],
                       peers=["keras", "tf1"])
    assert "keras" in results["skipped"] and "A-LRN" in results["skipped"]["keras"]
    assert set(results["compare"]) == {"tf1"}
    assert PASS_FIELDS <= set(results["forward_backward"])


def test_profile_dir_gets_a_trace(tmp_path):
    run_tiny(tiny(model="lenet", image_size=28), ["forward"], profile_dir=str(tmp_path))
    traces = [f for _, _, files in os.walk(tmp_path) for f in files if f.endswith(".xplane.pb")]
    assert traces


def test_tf1_peer_computes_the_same_network():
    w = tiny(model="alexnet", image_size=64)
    runs = contestants.tf1_passes(w, ["forward", "forward_backward"])
    predictions = runs["forward"]()
    assert predictions.shape == (2,)
    assert np.isfinite(runs["forward_backward"]())


def test_out_of_memory_is_reported_not_raised(monkeypatch):
    def exhausted(w, passes, strategy=None, inputs=None):
        def run():
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")
        return {p: run for p in passes}
    monkeypatch.setattr(contestants, "tfvgg_passes", exhausted)
    results = run_tiny(tiny(), ["forward"])
    assert results["error"].startswith("out of memory on CPU:0 during forward with --batch_size=2; "
                                       "try --batch_size=1")
    assert "forward" not in results


def test_json_is_written_atomically(tmp_path):
    path = tmp_path / "r.json"
    benchmark_results.write_results(str(path), {"forward": {"images_per_sec": 1.5}})
    assert json.loads(path.read_text()) == {"forward": {"images_per_sec": 1.5}}
    assert os.listdir(tmp_path) == ["r.json"]


def run_cli(*args, timeout=300):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": REPO}
    return subprocess.run([sys.executable, "-m", "benchmarks.vgg16", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("args,message", [
    (["--batch_size=0"], "--batch_size=0"),
    (["--model=F"], "--model"),
    (["--passes=sideways"], "--passes takes a comma-separated subset of forward, forward-backward, train"),
    (["--compare=torch"], "--compare takes a comma-separated subset of keras, tf1, direct"),
    (["--model=alexnet", "--image_size=32"], "--image_size=32: alexnet/pool5"),
    (["--precision=fp64"], "--precision"),
    (["--conv_algorithm=winograd4", "--precision=bf16"], "winograd4 in bfloat16 loses"),
    (["extra"], "unexpected arguments: extra"),
])
def test_bad_flags_exit_2_with_one_line(args, message):
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    error_lines = [l for l in result.stderr.splitlines() if "error:" in l]
    assert len(error_lines) == 1 and message in error_lines[0], result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(bool(tf.config.list_physical_devices("GPU")), reason="this machine has a GPU")
def test_device_gpu_without_gpu_exits_2():
    result = run_cli("--device=gpu")
    assert result.returncode == 2 and "TensorFlow sees no GPU" in result.stderr


def test_cli_end_to_end_writes_the_json(tmp_path):
    out = tmp_path / "bench.json"
    result = run_cli("--batch_size=2", "--image_size=32", "--num_batches=2", "--num_warmup_batches=1",
                     "--compare=tf1", f"--output_json={out}")
    assert result.returncode == 0, result.stderr
    assert "Forward across 2 steps" in result.stdout and "Results" in result.stdout
    data = json.loads(out.read_text())
    for pass_name in ("forward", "forward_backward"):
        assert PASS_FIELDS <= set(data[pass_name])
        assert set(data["compare"]["tf1"][pass_name]) >= {"images_per_sec", "ratio"}
    assert data["flags"]["batch_size"] == 2 and data["flags"]["num_batches"] == 2
    assert data["tf_version"] == tf.__version__ and data["device"] == "CPU:0"
    assert data["parameters"] == tfvgg.summary("D", (32, 32, 3), print_fn=None).total_params


@pytest.mark.skipif(not tf.config.list_physical_devices("GPU"), reason="needs a GPU")
def test_gpu_memory_report():
    tf.zeros([1024, 1024]).gpu()
    memory, kind = timing.peak_memory_bytes("GPU:0")
    assert kind == "device peak" and memory > 0


def test_conv_layers_lists_each_distinct_vgg16_shape_once():
    from benchmarks import conv_layers
    shapes = conv_layers.conv_shapes("D", 224, 3)
    assert shapes[0] == (224, 224, 3, 64, 3) and shapes[1] == (224, 224, 64, 64, 3)
    assert shapes[-1] == (14, 14, 512, 512, 3)
    assert len(shapes) == 9
    assert (56, 56, 256, 256, 1) in conv_layers.conv_shapes("C", 224, 3)   # C's 1x1 layers


def test_conv_layers_times_the_three_kernels():
    from benchmarks import conv_layers
    rates = conv_layers.time_layer(1, 8, 8, 4, 8, 3, tf.float32, repeats=1)
    assert set(rates) == {"forward", "input_gradient", "weight_gradient"}
    assert all(r > 0 for r in rates.values())


def test_tiny_run_with_winograd_convolutions():
    w = contestants.Workload(model="D", batch_size=2, image_size=32, channels=3, num_classes=10,
                             conv_algorithm="winograd2")
    results = run_tiny(w, ["forward", "forward_backward"], peers=["keras", "direct"])
    assert PASS_FIELDS <= set(results["forward_backward"])
    assert "ratio" in results["compare"]["keras"]["forward"]
    direct = results["compare"]["direct"]["forward_backward"]      # tfvgg against itself with direct convolutions
    assert direct["ratio"] == pytest.approx(direct["seconds_per_batch_mean"]
                                            / results["forward_backward"]["seconds_per_batch_mean"])


def test_direct_is_no_peer_of_a_direct_run():
    results = run_tiny(tiny(), ["forward"], peers=["direct"])
    assert "direct" not in results["compare"] and "--conv_algorithm=direct" in results["skipped"]["direct"]


def test_per_layer_table_shows_auto_pick_against_the_best(tmp_path, monkeypatch):
    from benchmarks import conv_layers
    from tfvgg import autotune
    monkeypatch.setenv(autotune.ENV_CACHE, str(tmp_path / "cache.json"))
    lines = []
    conv_layers.print_algorithm_table([(8, 8, 4, 8, 3), (8, 8, 4, 8, 1)], 1, tf.float32, ["winograd2"], repeats=1,
                                      print_fn=lines.append)
    assert len(lines) == 1 + 2                       # the header, then one line per pass of the 3x3 layer only
    assert "8x8    4->8    inference direct " in lines[1] and "| winograd2/1 " in lines[1]   # the rule's chunk
    assert "training" in lines[2] and "| auto: direct " in lines[2]   # tuning off in tests: the rule's choice
    ratio = float(lines[2].rsplit("auto/best ", 1)[1].rstrip(")"))
    assert 0 < ratio <= 1


def test_per_layer_table_times_a_pick_that_is_one_of_its_candidates_once(monkeypatch):
    from benchmarks import conv_layers
    from tfvgg import autotune
    workload = autotune.Workload(56, 56, 128, 256, 32, "float32", "NHWC", "training")
    rule = {c.algorithm: c for c in autotune.candidate_algorithms(workload)}
    assert conv_layers.as_tuned(workload, "winograd4") == rule["winograd4"].name != "winograd4"
    assert conv_layers.as_tuned(workload, "winograd4/3+xla") == "winograd4/3+xla"
    timed, lines = [], []
    def fake_time(w, choices, repeats, prepared, budget_rounds):
        timed.append([c.name for c in choices])
        return {c.name: 0.001 * (i + 1) for i, c in enumerate(choices)}
    monkeypatch.setattr(autotune, "time_choices", fake_time)
    monkeypatch.setattr(autotune, "choose", lambda w, fallback: next(   # what the tuner's first round timed
        c for c in autotune.candidate_algorithms(w) if c.algorithm == "winograd4"))
    conv_layers.print_algorithm_table([(56, 56, 128, 256, 3)], 32, tf.float32, ["winograd2", "winograd4"], 1,
                                      print_fn=lines.append)
    assert all(len(names) == len(set(names)) == 3 for names in timed)   # direct, F(2x2), F(4x4): no fourth
    pick = rule["winograd4"].name
    assert f"| {pick} 3.0 " in lines[2] and f"auto: {pick} 3.0 " in lines[2]   # the same run, the same ms


def test_per_layer_table_times_each_cell_once_per_sweep_over_the_whole_table(monkeypatch):
    from benchmarks import conv_layers
    from tfvgg import autotune
    rows = [(autotune.Workload(8, 8, 4, 8, 1, pass_name=p), ["direct", "winograd2/1", "winograd4/1"], "direct")
            for p in autotune.PASSES]
    slow_spell = {0: 3.0, 1: 1.0, 2: 1.0, 3: 1.0}   # the first call: winograd4 in a slow spell
    calls = []
    def fake_time(w, choices, repeats, prepared, budget_rounds):
        assert repeats == 1 and prepared is not None
        calls.append((w.pass_name, [c.name for c in choices]))
        spell = slow_spell[len(calls) - 1]
        return {c.name: {"direct": 2.0, "winograd2/1": 6.0, "winograd4/1": 1.0 * spell}[c.name] for c in choices}
    monkeypatch.setattr(autotune, "time_choices", fake_time)
    best = conv_layers.time_table(rows, sweeps=2)
    assert [pass_name for pass_name, _ in calls] == ["inference", "training", "inference", "training"]  # apart
    assert calls[0][1] == ["direct", "winograd2/1", "winograd4/1"]
    assert calls[2][1] == ["winograd4/1", "direct"]   # rotated; F(2x2) 3x behind after one run: timed once
    assert best[0] == {"direct": 2.0, "winograd2/1": 6.0, "winograd4/1": 1.0}   # the best of both sweeps


@pytest.mark.slow
def test_peak_memory_measures_each_contestant_in_a_process_of_its_own():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": REPO}
    result = subprocess.run([sys.executable, "-m", "benchmarks.peak_memory", "--model=lenet", "--batch_size=2",
                             "--contestants=tfvgg:direct,tfvgg:auto"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [l.split()[0] for l in lines] == ["tfvgg:direct", "tfvgg:auto"]
    peaks = [float(l.split()[1].replace(",", "")) for l in lines]
    assert all(100 < p < 10_000 for p in peaks)   # MiB: TensorFlow alone takes a few hundred


@pytest.mark.slow
def test_a_command_line_keeps_the_xla_kernels_it_compiled_on_disk(tmp_path):
    # TensorFlow's absl init callback lists the devices before main, and XLA reads TF_XLA_FLAGS then
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": REPO, "XDG_CACHE_HOME": str(tmp_path),
           "TFVGG_AUTOTUNE": "0"}
    env.pop("TF_XLA_FLAGS", None)
    result = subprocess.run([sys.executable, "-m", "benchmarks.conv_layers", "--model=vgg11_small", "--image_size=16",
                             "--batch_size=1", "--algorithms=winograd4", "--repeats=1"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    kernels = list((tmp_path / "tfvgg").glob("xla-*/*"))
    assert kernels and all(path.stat().st_size > 0 for path in kernels)


def test_rss_reports_a_commands_peak_and_passes_its_exit_code():
    env = {**os.environ, "PYTHONPATH": REPO}
    grow = subprocess.run([sys.executable, "-m", "benchmarks.rss", "--", sys.executable, "-c",
                           "x = bytearray(300 * 2 ** 20); x[::4096] = b'1' * len(x[::4096])"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert grow.returncode == 0, grow.stderr
    peak = float(grow.stdout.split("peak RSS ")[1].split(" MiB")[0].replace(",", ""))
    assert 300 <= peak < 1000
    failing = subprocess.run([sys.executable, "-m", "benchmarks.rss", "--", sys.executable, "-c", "exit(3)"],
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert failing.returncode == 3 and "exit 3" in failing.stdout


def test_make_images_writes_photograph_sized_jpegs(tmp_path):
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = tmp_path / "images"
    done = subprocess.run([sys.executable, "-m", "benchmarks.make_images", f"--out={out}", "--count=6",
                           "--classes=3"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    files = sorted(out.glob("*/*.jpg"))
    assert len(files) == 6 and len({f.parent.name for f in files}) == 3
    for f in files:
        shape = tf.io.decode_jpeg(tf.io.read_file(str(f))).shape
        assert 256 <= min(shape[:2]) <= 480 and shape[2] == 3
    again = subprocess.run([sys.executable, "-m", "benchmarks.make_images", f"--out={out}"], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "already exists" in again.stderr
