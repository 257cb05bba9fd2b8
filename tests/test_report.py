"""Results as data and the report over them: the JSON's fields, markdown tables, docs regenerated and checked."""
import dataclasses
import datetime
import json
import os
import re
import statistics
import subprocess
import sys

import pytest

import tfvgg
from benchmarks import contestants, measure, report, results, timing

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def entry(seconds, images=8, peak=1e12):
    return results.pass_entry(timing.Timing(list(seconds)), images, 2e11 * images, peak)


def fake_run(model="D", batch=8, keras_seconds=(0.5, 0.7), day="2026-11-25"):
    """A results dict as the benchmark writes it, with tfvgg at 0.4 s per batch forward."""
    tfvgg_forward, keras_forward = entry([0.4, 0.4]), entry(keras_seconds)
    keras_forward["ratio"] = tfvgg_forward["images_per_sec"] / keras_forward["images_per_sec"]
    measured = {"forward": tfvgg_forward, "compare": {"keras": {"forward": keras_forward}}, "skipped": {},
                "peak_tflops": 1.0, "replicas": 1}
    summary = tfvgg.summary(model, (224, 224, 3), print_fn=None)
    flags = {"batch_size": batch, "precision": "fp32", "conv_algorithm": "auto"}
    now = datetime.datetime.fromisoformat(day + "T10:00:00+00:00")
    return results.with_run_metadata(measured, summary, "/CPU:0", "Test CPU, 2 cores", flags, now=now)


def test_a_pass_keeps_every_batch_and_derives_the_rest():
    e = entry([0.3, 0.5, 0.4, 1.0], images=8)
    assert e["seconds_per_batch"] == [0.3, 0.5, 0.4, 1.0] and e["num_batches"] == 4
    assert e["seconds_per_batch_median"] == pytest.approx(0.45) and e["seconds_per_batch_best"] == 0.3
    assert e["seconds_per_batch_mean"] == pytest.approx(0.55)
    assert e["images_per_sec"] == pytest.approx(8 / 0.55) and e["tflops"] == pytest.approx(1.6 / 0.55)


def test_run_metadata_names_version_time_and_flags():
    run = fake_run()
    assert run["tfvgg_version"] == tfvgg.__version__ and run["timestamp"] == "2026-11-25T10:00:00Z"
    assert run["model"] == "D" and run["parameters"] == 138_357_544 and run["flags"]["batch_size"] == 8
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", results.with_run_metadata(
        {}, tfvgg.summary("lenet", print_fn=None), "CPU:0", "x", {})["timestamp"])


def test_a_real_tiny_run_records_each_batch():
    w = contestants.Workload(model="lenet", batch_size=2, image_size=32, channels=1, num_classes=10)
    s = tfvgg.summary("lenet", (32, 32, 1), 10, print_fn=None)
    out = measure.run_benchmark(w, s, {"num_batches": 3, "num_warmup_batches": 1}, ["forward"], [],
                                display_every=1, print_fn=lambda *_: None, probe_size=64)
    seconds = out["forward"]["seconds_per_batch"]
    assert len(seconds) == 3 and out["forward"]["seconds_per_batch_median"] == statistics.median(seconds)
    assert out["forward"]["seconds_per_batch_mean"] == pytest.approx(sum(seconds) / 3)


def test_markdown_table_cells():
    table = report.markdown_table([fake_run()])
    lines = table.splitlines()
    assert lines[0] == ("| run | pass | tfvgg s/batch | keras s/batch | tfvgg images/s | TFLOP/s | of peak | "
                        "tfvgg / keras |")
    # tfvgg 0.4 s, keras 0.6 s on average: 20 vs 13.33 images/s, 1.50x; 1.6e12 FLOP per batch / 0.4 s = 4 TFLOP/s
    assert lines[2] == ("| VGG-16 fp32 auto, batch 8 | forward | 0.400 +/- 0.000 | 0.600 +/- 0.141 | 20.00 | "
                        "4.000 | 4.00 | 1.50x |")
    assert lines[-1] == "Measured on Test CPU, 2 cores, TensorFlow " + results.tf.__version__ + \
        f", tfvgg {tfvgg.__version__}; 2026-11-25."


def write_run(path, run):
    results.write_results(str(path), run)
    return os.path.relpath(path)


def test_docs_tables_are_regenerated_and_checked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a = write_run(tmp_path / "a.json", fake_run())
    doc = tmp_path / "doc.md"
    doc.write_text(f"# Results\n\n<!-- benchmark-table: {a} -->\nold numbers\n<!-- /benchmark-table -->\nafter\n")
    assert report.update_docs([str(doc)], check=True) == str(doc)
    assert report.update_docs([str(doc)]) is None
    text = doc.read_text()
    assert "old numbers" not in text and "| VGG-16 fp32 auto, batch 8 | forward |" in text
    assert text.endswith("<!-- /benchmark-table -->\nafter\n")
    assert report.update_docs([str(doc)], check=True) is None   # current now
    write_run(tmp_path / "a.json", fake_run(keras_seconds=(1.2, 1.2)))   # a new measurement makes it stale
    assert report.update_docs([str(doc)], check=True) == str(doc)


def test_a_marker_ending_without_picks_keeps_the_runs_table_only():
    run = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "results",
                       "vgg16_b8_fp32_auto_zen4.json")   # a tuned run: its file holds the picks
    full = report.regenerate(f"<!-- benchmark-table: {run} -->\n<!-- /benchmark-table -->\n")
    short = report.regenerate(f"<!-- benchmark-table: {run} (without picks) -->\n<!-- /benchmark-table -->\n")
    assert "auto's picks in VGG-16" in full and "auto's picks" not in short
    assert short.split("\n")[1:6] == full.split("\n")[1:6]   # the same runs' table first


def test_an_unclosed_marker_or_a_foreign_file_is_an_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="has no <!-- /benchmark-table -->"):
        report.regenerate("<!-- benchmark-table: a.json -->\n| x |\n")
    (tmp_path / "other.json").write_text(json.dumps({"forward": 1}))
    with pytest.raises(ValueError, match="not a tfvgg benchmark result"):
        results.load_results("other.json")


def test_report_command_exit_codes(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("<!-- benchmark-table: missing.json -->\n<!-- /benchmark-table -->\n")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": REPO}
    result = subprocess.run([sys.executable, "-m", "benchmarks.report", "--check", str(doc)], cwd=str(tmp_path),
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "results file not found: missing.json" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_repository_tables_match_their_result_files(monkeypatch):
    monkeypatch.chdir(REPO)
    assert report.update_docs(["README.md", "docs/measurements.md"], check=True) is None


def test_autotune_picks_become_a_table():
    run = fake_run()
    assert report.autotune_table(run) == ""
    run["autotune"] = {"enabled": True, "tuned": 2, "reused": 0, "seconds": 41.6, "cache": "c.json", "layers": [
        {"pass": "inference", "layers": ["conv3_2", "conv3_3"], "workload": "56x56 256->256 batch 8 float32 NHWC "
         "inference", "choice": "winograd4/1", "seconds": {"direct": 0.2, "winograd4/1": 0.08},
         "speedup_vs_direct": 2.5, "reused": False, "tuning_seconds": 20.0}]}
    lines = report.autotune_table(run).splitlines()
    assert lines[0].startswith("auto's picks in VGG-16 fp32 auto, batch 8 (2 workloads tuned in 42 s")
    assert lines[-1] == "| conv3_2, conv3_3 | 56x56 256->256 | inference | winograd4/1 | 2.50x | 2 |"
    run["autotune"]["layers"].append(   # batch 32, screened: direct timed on 8 images only
        {"pass": "training", "layers": ["conv4_1"], "workload": "28x28 256->512 batch 32 float32 NHWC training",
         "choice": "winograd4/4", "seconds": {}, "screen": {"batch": 8, "seconds": {"direct": 0.4, "winograd4/4":
         0.2, "winograd6/8": 0.3}}, "speedup_vs_direct": 2.0, "speedup_batch": 8, "tuned": True, "reused": False,
         "tuning_seconds": 3.0})
    assert report.autotune_table(run).splitlines()[-1] == \
        "| conv4_1 | 28x28 256->512 | training | winograd4/4 | 2.00x (batch 8) | 0 + 3 at batch 8 |"


def test_cpu_features_line_names_what_the_cpu_has_and_lacks():
    line = report.cpu_features_line({"isa": ["avx2", "fma"], "onednn": False})
    assert line == ("  CPU features: AVX2, FMA; no AVX-512, AVX512_BF16, AMX; oneDNN off (TensorFlow's default on "
                    "this CPU; TF_ENABLE_ONEDNN_OPTS=1 turns it on)")
    amx = report.cpu_features_line({"isa": ["avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16"], "onednn": True})
    assert amx == "  CPU features: AVX2, FMA, AVX-512, AVX512_BF16, AMX; oneDNN on"
    capped = report.cpu_features_line({"isa": ["avx2", "fma", "avx512f"], "onednn": True,
                                       "settings": {"TF_NUM_INTRAOP_THREADS": "1", "ONEDNN_MAX_CPU_ISA": "AVX2"}})
    assert capped.endswith("; oneDNN on; ONEDNN_MAX_CPU_ISA=AVX2; TF_NUM_INTRAOP_THREADS=1")


def test_bf16_hint_only_for_fp32_on_an_amx_cpu(monkeypatch):
    from benchmarks import contestants, measure
    from tfvgg import autotune
    w = contestants.Workload(model="lenet", batch_size=1, image_size=28, channels=1, num_classes=10)
    lines = []
    if "amx_bf16" not in autotune.machine_fingerprint()["isa"]:
        assert measure.bf16_hint(w, 1e11, 64, lines.append) == {} and lines == []
    monkeypatch.setattr(autotune, "machine_fingerprint", lambda: {"isa": ["avx512f", "amx_bf16"]})
    hint = measure.bf16_hint(w, 1e9, 64, lines.append)
    assert hint["bf16_peak_tflops"] > 0
    assert lines == [f"  this CPU has AMX: the bf16 matmul peak is {hint['bf16_peak_tflops']:.3f} TFLOP/s, "
                     f"{hint['bf16_peak_tflops'] * 1e12 / 1e9:.1f}x fp32's; --precision=bf16 runs the convolutions "
                     "up to that much faster"]
    assert measure.bf16_hint(dataclasses.replace(w, precision="bf16"), 1e9, 64, lines.append) == {}
