"""The ONNX export against tfvgg itself, run by ONNX Runtime and OpenVINO, and the engines as benchmark peers."""
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import tfvgg
from tfvgg import onnx_export
from tfvgg.export import export_onnx

onnx = pytest.importorskip("onnx", reason="pip install -e '.[peers]' installs onnx, onnxruntime and openvino")
ort = pytest.importorskip("onnxruntime", reason="pip install -e '.[peers]' installs onnxruntime")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELATIVE_TOLERANCE = 1e-4   # max |engine - tfvgg| over max |tfvgg| of the logits


def built(config, image_size, seed=0, batch=2):
    """(store, NHWC images, tfvgg's logits) of ``config`` with fixed random weights and images."""
    net = tfvgg.get_network(config)
    p = tfvgg.ParamStore(seed=seed)
    images = tf.random.stateless_normal([batch, image_size, image_size, net.input_shape[2]], seed=(seed, 7))
    logits = tfvgg.inference_op(images, p, 1.0, config)[2].numpy()
    return p, images.numpy(), logits


def run_onnxruntime(model, images):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(["logits", "probabilities"], {"images": images})


def relative_error(got, want):
    return float(np.abs(got - want).max() / np.abs(want).max())


@pytest.mark.parametrize("config, image_size", [("lenet", 28), ("alexnet", 224), ("A-LRN", 64), ("D", 224)])
def test_onnxruntime_logits_match_tfvgg(config, image_size):
    """Every primitive's translation (Conv + SAME pads, stride-4 conv, LRN, VALID pools, the permuted fc6) at
    once: ONNX Runtime's logits equal tfvgg's to 1e-4 of their scale."""
    p, images, logits = built(config, image_size)
    got, probabilities = run_onnxruntime(onnx_export.to_onnx(p, config), np.transpose(images, (0, 3, 1, 2)))
    assert got.shape == logits.shape
    assert relative_error(got, logits) <= RELATIVE_TOLERANCE
    np.testing.assert_allclose(probabilities, tf.nn.softmax(logits).numpy(), atol=1e-5)


def test_nhwc_layout_takes_tfvgg_images_as_they_are():
    p, images, logits = built("lenet", 28, seed=3)
    model = onnx_export.to_onnx(p, "lenet", layout="NHWC")
    assert [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == ["N", 28, 28, 1]
    assert relative_error(run_onnxruntime(model, images)[0], logits) <= RELATIVE_TOLERANCE


def test_openvino_logits_match_tfvgg():
    ov = pytest.importorskip("openvino", reason="pip install -e '.[peers]' installs openvino")
    p, images, logits = built("alexnet", 224, seed=1)
    core = ov.Core()
    compiled = core.compile_model(core.read_model(onnx_export.to_onnx(p, "alexnet").SerializeToString()), "CPU",
                                  {"INFERENCE_PRECISION_HINT": "f32"})
    got = compiled({"images": np.transpose(images, (0, 3, 1, 2))})[compiled.output("logits")]
    assert relative_error(got, logits) <= RELATIVE_TOLERANCE


@pytest.mark.parametrize("size, kernel, stride", [(224, 11, 4), (7, 3, 2), (28, 5, 1), (13, 3, 2), (6, 2, 2)])
def test_same_pads_reproduce_tensorflow_same(size, kernel, stride):
    """Explicit pads + VALID equal TensorFlow's own SAME convolution (the odd pixel goes after)."""
    x = tf.random.stateless_normal([1, size, size, 2], seed=(1, size))
    k = tf.random.stateless_normal([kernel, kernel, 2, 3], seed=(2, kernel))
    before, after = onnx_export.same_pads(size, kernel, stride)
    padded = tf.pad(x, [[0, 0], [before, after], [before, after], [0, 0]])
    np.testing.assert_allclose(tf.nn.conv2d(padded, k, stride, "VALID"), tf.nn.conv2d(x, k, stride, "SAME"),
                               rtol=1e-5, atol=1e-5)


def test_a_store_of_another_network_is_refused_naming_the_variables():
    p, _, _ = built("lenet", 28)
    with pytest.raises(ValueError, match=r"cannot export alexnet: missing conv3/w"):
        onnx_export.to_onnx(p, "alexnet", image_size=224)
    with pytest.raises(ValueError, match=r"alexnet/pool5: a 3x3 VALID window does not fit"):
        onnx_export.to_onnx(p, "alexnet")   # at the 28x28 the store was built for
    with pytest.raises(ValueError, match="no variables"):
        onnx_export.to_onnx(tfvgg.ParamStore(), "lenet")
    with pytest.raises(ValueError, match="layout"):
        onnx_export.to_onnx(p, "lenet", layout="CHWN")


def test_missing_onnx_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)   # import onnx now raises ImportError
    p, _, _ = built("lenet", 28)
    with pytest.raises(ImportError, match=r"pip install -e '\.\[peers\]'"):
        onnx_export.to_onnx(p, "lenet")


def test_export_onnx_writes_whole_files_and_refuses_to_overwrite(tmp_path):
    p, images, logits = built("lenet", 28, seed=2)
    path = str(tmp_path / "lenet.onnx")
    export_onnx(p, path, "lenet")
    assert os.listdir(tmp_path) == ["lenet.onnx"]   # no temporary file left beside it
    got = run_onnxruntime(onnx.load(path), np.transpose(images, (0, 3, 1, 2)))[0]
    assert relative_error(got, logits) <= RELATIVE_TOLERANCE
    with pytest.raises(FileExistsError):
        export_onnx(p, path, "lenet")


def test_export_cli_onnx(tmp_path):
    p, images, logits = built("lenet", 28, seed=5)
    weights = str(tmp_path / "lenet.npz")
    tfvgg.save_npz(p, weights)
    out = str(tmp_path / "lenet.onnx")
    command = [sys.executable, "-m", "tfvgg.export", "--format=onnx", "--model=lenet", f"--weights={weights}",
               f"--out={out}", "--layout=NHWC"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": REPO}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "input images: float32 [N, H, W, C] at 28x28" in done.stdout
    assert relative_error(run_onnxruntime(onnx.load(out), images)[0], logits) <= RELATIVE_TOLERANCE
    again = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "already exists" in again.stderr and "Traceback" not in again.stderr


def tiny_workload(**changes):
    from benchmarks import contestants
    return contestants.Workload(**{"model": "alexnet", "batch_size": 2, "image_size": 64, "channels": 3,
                                   "num_classes": 10, **changes})


@pytest.mark.parametrize("peer", ["onnxruntime", "openvino"])
def test_engine_peers_predict_what_tfvgg_predicts(peer):
    """The benchmark feeds the engines tfvgg's initial weights and images: the same argmax per image."""
    pytest.importorskip(peer, reason="pip install -e '.[peers]'")
    from benchmarks import measure
    w = tiny_workload()
    engine = measure.PEERS[peer](w, ["forward", "forward_backward"])
    assert set(engine) == {"forward"}   # inference engines: the forward pass only
    p = tfvgg.ParamStore(seed=0)       # what the benchmark's tfvgg contestant starts from
    predictions = tfvgg.inference_op(w.random_images(), p, 1.0, w.model, w.num_classes)[0].numpy()
    np.testing.assert_array_equal(engine["forward"](), predictions)


def test_benchmark_times_the_engines_forward_only_and_says_why_not_otherwise():
    from benchmarks import contestants, measure
    pytest.importorskip("openvino", reason="pip install -e '.[peers]'")
    w = tiny_workload()
    s = tfvgg.summary(w.model, (64, 64, 3), 10, print_fn=None)
    results = measure.run_benchmark(w, s, {"num_batches": 1, "num_warmup_batches": 1},
                                    ["forward", "forward_backward"], ["onnxruntime", "openvino"], display_every=1,
                                    print_fn=lambda *_: None, probe_size=128)
    for peer in ("onnxruntime", "openvino"):
        assert set(results["compare"][peer]) == {"forward"}
        entry = results["compare"][peer]["forward"]
        assert entry["ratio"] == pytest.approx(results["forward"]["images_per_sec"] / entry["images_per_sec"])
    with pytest.raises(contestants.PeerUnavailable, match="fp32 only"):
        contestants.onnxruntime_passes(tiny_workload(precision="bf16"), ["forward"])
    with pytest.raises(contestants.PeerUnavailable, match="forward pass only"):
        contestants.onnxruntime_passes(w, ["forward_backward"])


def test_a_missing_engine_is_skipped_with_how_to_install(monkeypatch):
    from benchmarks import contestants
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(contestants.PeerUnavailable, match=r"onnxruntime is not installed \(pip install"):
        contestants.onnxruntime_passes(tiny_workload(), ["forward"])
