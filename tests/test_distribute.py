"""tf.distribute on CPU: mirrored over 2 logical devices, and two worker processes on 127.0.0.1.

Logical devices must be configured before TensorFlow starts, so each run is its own process.
"""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfvgg import checkpoint, distribute

pytestmark = pytest.mark.slow   # every test here starts two or more TensorFlow processes

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": REPO}
TWO_STEPS = ["--model=lenet", "--image_size=28", "--batch_size=32", "--epochs=1", "--train_subset=64",
             "--keep_prob=1.0", "--log_every=1000"]


def train(model_dir, *flags, env=None, wait=True):
    command = [sys.executable, "-m", "tfvgg.train", *TWO_STEPS, f"--model_dir={model_dir}", *flags]
    if not wait:
        return subprocess.Popen(command, cwd=REPO, env=env or ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    return subprocess.run(command, cwd=REPO, env=env or ENV, capture_output=True, text=True, timeout=300)


def final_weights(model_dir):
    path = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    reader = tf.train.load_checkpoint(path)
    return {n: reader.get_tensor(checkpoint._key(n)) for n in checkpoint.stored_param_shapes(path)}


def checksum(stdout):
    return [l for l in stdout.splitlines() if l.startswith("Weights checksum:")][-1]


def test_mirrored_over_two_cpus_matches_one_device(tmp_path):
    mirrored = train(tmp_path / "mirrored", "--strategy=mirrored", "--cpu_replicas=2")
    assert mirrored.returncode == 0, mirrored.stderr
    assert "2 replicas (mirrored)" in mirrored.stdout
    single = train(tmp_path / "single")
    assert single.returncode == 0, single.stderr
    a, b = final_weights(str(tmp_path / "mirrored")), final_weights(str(tmp_path / "single"))
    assert a.keys() == b.keys() and len(a) == 8
    for name in a:   # two Adam steps on the same global batches, split or not
        np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-6, err_msg=name)
    assert not np.allclose(a["conv1/w"], tf.zeros_like(a["conv1/w"]))
    resumed = train(tmp_path / "mirrored", "--strategy=mirrored", "--cpu_replicas=2", "--epochs=2")
    assert resumed.returncode == 0, resumed.stderr
    assert "Resumed from" in resumed.stdout and "(step 2 of 4)" in resumed.stdout


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def run_two_workers(start):
    """Start ``start(env)`` once per worker with its TF_CONFIG; [(exit code, stdout, stderr)], killed after 240 s."""
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        processes.append(start({**ENV, "TF_CONFIG": json.dumps(tf_config)}, index))
    outputs = []
    try:
        for process in processes:
            out, err = process.communicate(timeout=240)
            outputs.append((process.returncode, out, err))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    return outputs


def test_two_workers_on_localhost_end_identical(tmp_path):
    outputs = run_two_workers(lambda env, _: train(tmp_path, "--strategy=multi_worker", env=env, wait=False))
    for code, out, err in outputs:
        assert code == 0, err[-3000:]
        assert "2 replicas (multi_worker)" in out
    assert checksum(outputs[0][1]) == checksum(outputs[1][1])
    assert os.path.exists(tmp_path / "metrics.csv")                              # the chief's
    assert not [d for d in os.listdir(tmp_path) if d.startswith(".worker-1-checkpoints")]  # the other's, removed


def test_multi_worker_needs_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="needs TF_CONFIG"):
        distribute.make_strategy("multi_worker")
    with pytest.raises(ValueError, match="strategy must be one of default, mirrored, multi_worker"):
        distribute.make_strategy("parameter_server")


def test_chief_from_tf_config(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:2"]},
                                                "task": {"type": "worker", "index": 1}}))
    assert distribute.task() == ("worker", 1) and not distribute.is_chief()
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"chief": ["c:1"], "worker": ["a:1"]},
                                                "task": {"type": "chief", "index": 0}}))
    assert distribute.is_chief()


def test_benchmark_mirrored_reports_scaling(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "-m", "benchmarks.vgg16", "--strategy=mirrored", "--cpu_replicas=2",
                             "--batch_size=4", "--image_size=32", "--num_batches=1", "--num_warmup_batches=1",
                             "--passes=forward,forward-backward,train", f"--output_json={out}"],
                            cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert data["replicas"] == 2
    for pass_name in ("forward", "forward_backward", "train"):
        scaling = data["scaling"][pass_name]
        assert scaling["replicas"] == 2 and scaling["one_replica_images_per_sec"] > 0
        assert scaling["efficiency"] == pytest.approx(
            data[pass_name]["images_per_sec"] / (2 * scaling["one_replica_images_per_sec"]))
        assert data[pass_name]["images_per_sec_per_replica"] == pytest.approx(data[pass_name]["images_per_sec"] / 2)
    assert "scaling over 2 replicas" in result.stdout


def test_benchmark_on_two_workers(tmp_path):
    def start(env, index):
        command = [sys.executable, "-m", "benchmarks.vgg16", "--strategy=multi_worker", "--batch_size=4",
                   "--image_size=32", "--num_batches=1", "--num_warmup_batches=1",
                   f"--output_json={tmp_path / f'worker{index}.json'}"]
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

    for code, out, err in run_two_workers(start):
        assert code == 0, err[-3000:]
        assert "scaling over 2 replicas" in out
    for index in range(2):
        data = json.loads((tmp_path / f"worker{index}.json").read_text())
        assert data["replicas"] == 2 and data["scaling"]["forward_backward"]["one_replica_images_per_sec"] > 0
