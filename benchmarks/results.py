"""The benchmark's results as plain data: one dict per run, the same as its JSON file.

    {"tfvgg_version": "0.1.0", "timestamp": "2026-11-25T04:30:00Z", "model": "D", "flags": {...},
     "peak_tflops": 0.33, "forward": {pass entry}, "forward_backward": {...},
     "compare": {"keras": {"forward": {pass entry + "ratio"}}}, "skipped": {...}, ...}

A pass entry holds every timed batch (``seconds_per_batch``, seconds) and what
follows from them: mean, sample sd, median, best, images/s, TFLOP/s, fraction
of the matmul peak.
"""
import datetime
import json

import tensorflow as tf

import tfvgg
from tfvgg.util import write_json

TFLOPS_COUNTED_FROM = "direct convolution multiply-adds x 2 (forward-backward x 3)"


def pass_entry(t, images_per_batch, flops_per_batch, peak_flops):
    """One contestant's pass from its ``timing.Timing`` ``t``; rates from the mean seconds per batch."""
    return {
        "seconds_per_batch": list(t.durations),
        "seconds_per_batch_mean": t.mean,
        "seconds_per_batch_sd": t.sd,
        "seconds_per_batch_median": t.median,
        "seconds_per_batch_best": t.best,
        "num_batches": t.count,
        "images_per_sec": images_per_batch / t.mean,
        "tflops": flops_per_batch / t.mean / 1e12,
        "peak_fraction": flops_per_batch / t.mean / peak_flops,
    }


def with_run_metadata(measured, model_summary, device, device_name, flag_values, now=None):
    """``measured`` plus what identifies the run: versions, time (UTC), machine, model, every flag's value."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return {
        **measured,
        "tfvgg_version": tfvgg.__version__,
        "tf_version": tf.__version__,
        "timestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "device": device.lstrip("/"),
        "device_name": device_name,
        "model": model_summary.network,
        "parameters": model_summary.total_params,
        "mult_adds_per_image": model_summary.total_mult_adds,
        "tflops_counted_from": TFLOPS_COUNTED_FROM,
        "flags": dict(flag_values),
    }


def write_results(path, results):
    """The results as JSON at ``path``, written atomically (never half a file)."""
    write_json(path, results)


def load_results(path):
    """A results dict from a JSON file the benchmark wrote; ValueError if it is not one."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"results file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not JSON ({e})") from None
    if not isinstance(data, dict) or "flags" not in data or "model" not in data:
        raise ValueError(f"{path}: JSON, but not a tfvgg benchmark result (no 'model' and 'flags')")
    return data
