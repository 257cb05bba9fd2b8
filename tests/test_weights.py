"""Weight files: Keras 2/3 HDF5, the classic npz, tfvgg's npz; every malformed file gets a clear error."""
import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

import tfvgg
from tfvgg import weights
from tests.conftest import random_images

KERAS = {"D": keras.applications.VGG16, "E": keras.applications.VGG19}


def write_keras2_h5(model, path, weight_name_style="keras"):
    """The Keras 2 / keras.applications layout, written with h5py.

    weight_name_style "applications" names tensors like the 2016 download files
    (``block1_conv1_W_1:0``), so loading must follow the weight_names order, not names.
    """
    with h5py.File(path, "w") as f:
        names = [layer.name for layer in model.layers]
        f.attrs["layer_names"] = np.array([n.encode() for n in names])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4"
        for layer in model.layers:
            group = f.create_group(layer.name)
            tensors = layer.get_weights()
            suffixes = ["kernel:0", "bias:0"] if weight_name_style == "keras" else ["W_1:0", "b_1:0"]
            sep = "/" if weight_name_style == "keras" else "_"
            weight_names = [f"{layer.name}{sep}{s}" for s in suffixes[:len(tensors)]]
            group.attrs["weight_names"] = np.array([n.encode() for n in weight_names])
            for name, value in zip(weight_names, tensors):
                group.create_dataset(name, data=value)


@pytest.mark.parametrize("config", ["D", "E"])
def test_keras3_weights_file_gives_keras_logits(tmp_path, rng, config):
    model = KERAS[config](weights=None, input_shape=(32, 32, 3), classes=10, classifier_activation=None)
    path = str(tmp_path / "model.weights.h5")
    model.save_weights(path)
    p = tfvgg.ParamStore()
    loaded = tfvgg.load_weights(p, path, config, input_shape=(32, 32, 3))
    assert loaded == p.names and len(loaded) == len(model.weights)
    images = random_images(rng, (2, 32, 32, 3), scale=50.0)
    ours = tfvgg.inference_op(images, p, config=config)[2].numpy()
    theirs = model(images).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-4 * np.abs(theirs).max())


def test_keras2_applications_notop_file_gives_keras_features(tmp_path, rng):
    model = keras.applications.VGG16(weights=None, include_top=False, input_shape=(64, 96, 3))
    path = str(tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5")
    write_keras2_h5(model, path, weight_name_style="applications")
    check = keras.applications.VGG16(weights=None, include_top=False, input_shape=(64, 96, 3))
    check.load_weights(path)  # Keras itself reads our file the same way
    np.testing.assert_array_equal(check.get_weights()[-2], model.get_weights()[-2])
    p = tfvgg.ParamStore()
    loaded = tfvgg.load_weights(p, path, "D")
    assert loaded[-1] == "conv5_3/b" and "fc6/w" not in p
    images = random_images(rng, (2, 64, 96, 3), scale=50.0)
    ours = tfvgg.inference_op(images, p, config="D", include_top=False).numpy()
    theirs = model(images).numpy()
    assert ours.shape == theirs.shape == (2, 2, 3, 512)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-4 * np.abs(theirs).max())


def test_keras2_full_file_loads_into_a_built_store(tmp_path):
    model = keras.applications.VGG16(weights=None, input_shape=(32, 32, 3), classes=7)
    path = str(tmp_path / "vgg16.h5")
    write_keras2_h5(model, path)
    p = tfvgg.ParamStore()
    tfvgg.inference_op(tf.zeros([1, 32, 32, 3]), p, config="D", num_classes=7)
    tfvgg.load_weights(p, path, "D")
    for ours, theirs in zip(p.params, model.get_weights()):
        np.testing.assert_array_equal(ours.numpy(), theirs)


def small_store(config="A", num_classes=10, size=32):
    p = tfvgg.ParamStore(seed=3)
    tfvgg.inference_op(tf.zeros([1, size, size, 3]), p, config=config, num_classes=num_classes)
    return p


@pytest.mark.parametrize("layout,first_key", [("tfvgg", "conv1_1/w"), ("classic", "conv1_1_W")])
def test_npz_round_trip(tmp_path, layout, first_key):
    p = small_store()
    path = str(tmp_path / "w.npz")
    tfvgg.save_npz(p, path, layout=layout)
    with np.load(path) as data:
        assert data.files[0] == first_key and len(data.files) == len(p)
    q = tfvgg.ParamStore()
    tfvgg.load_weights(q, path, "A", input_shape=(32, 32, 3))
    assert q.names == p.names
    for a, b in zip(p.params, q.params):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert sorted(f.name for f in tmp_path.iterdir()) == ["w.npz"]


def test_classic_npz_written_by_hand(tmp_path):
    """The widely used vgg16_weights.npz names: conv1_1_W, conv1_1_b, ..., fc8_W, fc8_b."""
    shapes = tfvgg.summary("D", (32, 32, 3), print_fn=None).variable_shapes()
    rng = np.random.default_rng(0)
    arrays = {n.replace("/w", "_W").replace("/b", "_b"): rng.normal(size=s).astype(np.float32)
              for n, s in shapes.items()}
    path = tmp_path / "vgg16_weights.npz"
    np.savez(path, **arrays)
    p = tfvgg.ParamStore()
    tfvgg.load_weights(p, str(path), "D", input_shape=(32, 32, 3))
    np.testing.assert_array_equal(p["fc8/b"].numpy(), arrays["fc8_b"])
    np.testing.assert_array_equal(p["conv5_3/w"].numpy(), arrays["conv5_3_W"])


def test_missing_extra_and_misshaped_tensors_are_each_named(tmp_path):
    p = small_store()
    arrays = {n: v.numpy() for n, v in zip(p.names, p.params)}
    del arrays["fc8/b"]
    arrays["fc9/w"] = np.zeros((3, 3), np.float32)
    arrays["conv2_1/w"] = np.zeros((3, 3, 64, 99), np.float32)
    path = str(tmp_path / "bad.npz")
    np.savez(path, **arrays)
    before = p["conv2_1/w"].numpy()
    with pytest.raises(ValueError) as error:
        tfvgg.load_weights(p, path, "A")
    message = str(error.value)
    assert "missing fc8/b" in message and "unexpected fc9/w" in message
    assert "conv2_1/w: file (3, 3, 64, 99), needed (3, 3, 64, 128)" in message
    np.testing.assert_array_equal(p["conv2_1/w"].numpy(), before)  # nothing loaded


def test_wrong_configuration_for_the_file(tmp_path):
    path = str(tmp_path / "a.npz")
    tfvgg.save_npz(small_store("A"), path)
    q = tfvgg.ParamStore()
    with pytest.raises(ValueError, match="as configuration D.*missing conv1_2/w"):
        tfvgg.load_weights(q, path, "D", input_shape=(32, 32, 3))
    assert len(q) == 0


def test_truncated_and_foreign_files(tmp_path):
    p = small_store()
    good = tmp_path / "good.npz"
    tfvgg.save_npz(p, str(good))
    data = good.read_bytes()
    (tmp_path / "truncated.npz").write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match="truncated.npz: not a readable .npz weights file"):
        weights.read_weights(str(tmp_path / "truncated.npz"))

    model = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
    h5 = tmp_path / "model.weights.h5"
    model.save_weights(str(h5))
    h5_bytes = h5.read_bytes()
    (tmp_path / "truncated.h5").write_bytes(h5_bytes[:len(h5_bytes) // 3])
    with pytest.raises(ValueError, match="truncated.h5: not a readable HDF5 weights file"):
        weights.read_weights(str(tmp_path / "truncated.h5"))

    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.create_dataset("temperature", data=np.arange(3))
    with pytest.raises(ValueError, match="other.h5: an HDF5 file, but not Keras weights"):
        weights.read_weights(str(tmp_path / "other.h5"))

    (tmp_path / "notes.txt").write_text("not weights")
    with pytest.raises(ValueError, match="neither an HDF5"):
        weights.read_weights(str(tmp_path / "notes.txt"))

    np.savez(tmp_path / "pickled.npz", conv1_1_W=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="holds Python objects"):
        weights.read_weights(str(tmp_path / "pickled.npz"))

    with pytest.raises(FileNotFoundError, match="weights file not found: .*absent.h5"):
        weights.read_weights(str(tmp_path / "absent.h5"))
