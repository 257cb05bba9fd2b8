"""SavedModel export served by plain TensorFlow, and the export/classify command lines."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import tfvgg
from tfvgg.export import export_saved_model

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": REPO}


def run_module(module, *args):
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=ENV, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def small_weights(tmp_path_factory):
    """An npz of configuration A at 32x32 with 10 classes."""
    p = tfvgg.ParamStore(seed=4)
    tfvgg.inference_op(tf.zeros([1, 32, 32, 3]), p, config="A", num_classes=10)
    path = str(tmp_path_factory.mktemp("weights") / "a.npz")
    tfvgg.save_npz(p, path)
    return p, path


def test_saved_model_is_served_without_tfvgg(tmp_path, small_weights):
    p, _ = small_weights
    out = str(tmp_path / "model")
    export_saved_model(p, out, "A", image_size=32, class_names=[f"c{i}" for i in range(10)], top_k=3)
    images = np.random.default_rng(0).integers(0, 256, size=(2, 40, 36, 3), dtype=np.uint8)
    np.save(tmp_path / "images.npy", images)
    script = textwrap.dedent(f"""
        import sys, numpy as np, tensorflow as tf
        model = tf.saved_model.load({out!r})
        images = np.load({str(tmp_path / 'images.npy')!r})
        out = model.signatures["serving_default"](images=tf.constant(images))
        out_f = model.signatures["serving_float"](images=tf.constant(images.astype(np.float32)))
        assert "tfvgg" not in sys.modules
        np.save({str(tmp_path / 'probs.npy')!r}, out["probabilities"].numpy())
        np.testing.assert_allclose(out_f["probabilities"].numpy(), out["probabilities"].numpy(), rtol=1e-5)
        print(out["top_k_labels"].numpy()[0][0].decode(), out["top_k_indices"].shape)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=str(tmp_path), env={**ENV, "PYTHONPATH": ""},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    served = np.load(tmp_path / "probs.npy")
    x = tf.image.resize(tf.cast(images, tf.float32), (32, 32))
    expected = tfvgg.inference_op(tfvgg.preprocess(x, "caffe"), p, config="A")[1].numpy()
    np.testing.assert_allclose(served, expected, rtol=1e-4, atol=1e-6)
    label, shape = result.stdout.split(maxsplit=1)
    assert label == f"c{int(np.argmax(expected[0]))}" and shape.strip() == "(2, 3)"


def test_export_refuses_an_existing_directory(tmp_path, small_weights):
    p, _ = small_weights
    (tmp_path / "taken").mkdir()
    with pytest.raises(FileExistsError, match="already exists"):
        export_saved_model(p, str(tmp_path / "taken"), "A", image_size=32)


def test_export_cli(tmp_path, small_weights):
    _, weights = small_weights
    out = str(tmp_path / "exported")
    result = run_module("tfvgg.export", "--model=A", f"--weights={weights}", f"--out={out}", "--image_size=32")
    assert result.returncode == 0, result.stderr
    assert "Exported VGG-11" in result.stdout and os.path.isfile(os.path.join(out, "saved_model.pb"))
    assert not [d for d in os.listdir(tmp_path) if ".tmp-" in d]
    again = run_module("tfvgg.export", "--model=A", f"--weights={weights}", f"--out={out}", "--image_size=32")
    assert again.returncode == 2 and "already exists" in again.stderr and "Traceback" not in again.stderr
    wrong = run_module("tfvgg.export", "--model=D", f"--weights={weights}", f"--out={tmp_path / 'x'}",
                       "--image_size=32")
    assert wrong.returncode == 2 and "does not fit" in wrong.stderr and "Traceback" not in wrong.stderr
    missing = run_module("tfvgg.export", f"--out={tmp_path / 'y'}")
    assert missing.returncode == 2 and "--weights" in missing.stderr and "Traceback" not in missing.stderr


def test_classify_cli(tmp_path, small_weights):
    _, weights = small_weights
    image = np.zeros((50, 60, 3), np.uint8)
    image[:, :30] = 200
    path = str(tmp_path / "picture.png")
    tf.io.write_file(path, tf.io.encode_png(image))
    result = run_module("tfvgg.classify", "--model=A", f"--weights={weights}", "--image_size=32", "--top=3", path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == path and len(lines) == 4 and lines[1].startswith("  1. class ")
    no_weights = run_module("tfvgg.classify", path)
    assert no_weights.returncode == 2 and "random weights classify nothing" in no_weights.stderr
    bad_image = run_module("tfvgg.classify", "--model=A", f"--weights={weights}", "--image_size=32",
                           str(tmp_path / "absent.png"))
    assert bad_image.returncode == 2 and "image not found" in bad_image.stderr
