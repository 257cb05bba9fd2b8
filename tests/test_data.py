"""IDX files, image folders and the digits set."""
import gzip
import os
import struct

import numpy as np
import pytest
import tensorflow as tf

from tfvgg import data


def idx_bytes(array, type_code=0x08):
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_mnist(folder, n_train=12, n_test=5, compress=True):
    rng = np.random.default_rng(0)
    files = {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
             "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
             "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
             "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8)}
    for name, array in files.items():
        payload = idx_bytes(array)
        if compress:
            with gzip.open(os.path.join(folder, name + ".gz"), "wb") as f:
                f.write(payload)
        else:
            with open(os.path.join(folder, name), "wb") as f:
                f.write(payload)
    return files


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_from_idx_files(tmp_path, compress):
    files = write_mnist(str(tmp_path), compress=compress)
    ds = data.load_mnist(str(tmp_path), "fashion_mnist")
    assert ds.train_images.shape == (12, 28, 28, 1) and ds.test_labels.shape == (5,)
    np.testing.assert_array_equal(ds.train_images[..., 0], files["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(ds.test_labels, files["t10k-labels-idx1-ubyte"])
    assert ds.class_names[9] == "Ankle boot" and ds.num_classes == 10


def test_idx_other_types_and_big_endian(tmp_path):
    values = np.array([[1.5, -2.0], [3.25, 1e6]], np.float32)
    path = tmp_path / "floats.idx"
    path.write_bytes(idx_bytes(values, type_code=0x0D))
    np.testing.assert_array_equal(data.read_idx(str(path)), values)


def test_corrupt_idx_files_are_named(tmp_path):
    good = idx_bytes(np.zeros((2, 3, 3), np.uint8))
    (tmp_path / "magic").write_bytes(b"\x08\x03\x00\x00" + good[4:])
    with pytest.raises(ValueError, match="magic: not an IDX file .*expected 00 00 <type> <ndim>"):
        data.read_idx(str(tmp_path / "magic"))
    (tmp_path / "short").write_bytes(good[:-4])
    with pytest.raises(ValueError, match=r"short: IDX data of 30 bytes; shape \(2, 3, 3\) of uint8 needs 34"):
        data.read_idx(str(tmp_path / "short"))
    (tmp_path / "header").write_bytes(good[:9])
    with pytest.raises(ValueError, match="header cut short"):
        data.read_idx(str(tmp_path / "header"))
    (tmp_path / "broken.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(ValueError, match="broken.gz: not a readable gzip file"):
        data.read_idx(str(tmp_path / "broken.gz"))
    with pytest.raises(FileNotFoundError, match="IDX file not found"):
        data.read_idx(str(tmp_path / "absent"))


def test_missing_mnist_file_is_named(tmp_path):
    write_mnist(str(tmp_path))
    os.remove(tmp_path / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte.gz .*not found in"):
        data.load_mnist(str(tmp_path))


def make_folder(root, classes=("daisy", "rose", "tulip"), per_class=5, size=(20, 30)):
    colours = {0: (255, 0, 0), 1: (0, 255, 0), 2: (0, 0, 255)}
    for label, name in enumerate(classes):
        os.makedirs(os.path.join(root, name))
        for i in range(per_class):
            image = np.zeros((*size, 3), np.uint8) + np.array(colours[label % 3], np.uint8)
            tf.io.write_file(os.path.join(root, name, f"{i}.png"), tf.io.encode_png(image))


def test_image_folder(tmp_path):
    make_folder(str(tmp_path))
    ds = data.load_image_folder(str(tmp_path), image_size=16)
    assert ds.class_names == ("daisy", "rose", "tulip")
    assert len(ds.train_images) == 12 and len(ds.test_images) == 3   # 1 of 5 per class held out
    assert ds.train_images.shape[1:] == (16, 16, 3) and ds.train_images.dtype == np.uint8
    for images, labels in ((ds.train_images, ds.train_labels), (ds.test_images, ds.test_labels)):
        np.testing.assert_array_equal(np.argmax(images[:, 8, 8, :], axis=1), labels)   # colour = class
    again = data.load_image_folder(str(tmp_path), image_size=16)
    np.testing.assert_array_equal(again.test_labels, ds.test_labels)


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        data.load_image_folder(str(tmp_path / "absent"), 16)
    make_folder(str(tmp_path / "one"), classes=("only",))
    with pytest.raises(ValueError, match="one sub-folder per class"):
        data.load_image_folder(str(tmp_path / "one"), 16)
    make_folder(str(tmp_path / "bad"), classes=("a", "b"))
    (tmp_path / "bad" / "b" / "9.jpg").write_text("not an image")
    with pytest.raises(ValueError, match="9.jpg: not a decodable image"):
        data.load_image_folder(str(tmp_path / "bad"), 16)


def test_digits_split_is_fixed_and_complete():
    ds = data.load_digits(seed=0)
    assert len(ds.train_images) + len(ds.test_images) == 1797
    assert ds.train_images.shape[1:] == (8, 8, 1) and ds.train_images.max() == 255
    np.testing.assert_array_equal(data.load_digits(seed=0).test_labels, ds.test_labels)


def test_tf_dataset_resizes_scales_and_replays_an_epoch():
    images = np.arange(10 * 8 * 8, dtype=np.uint8).reshape(10, 8, 8, 1)
    labels = np.arange(10, dtype=np.int64)
    first = [l.numpy().tolist() for _, l in data.to_tf_dataset(images, labels, 3, 16, 3, shuffle_seed=5)]
    again = [l.numpy().tolist() for _, l in data.to_tf_dataset(images, labels, 3, 16, 3, shuffle_seed=5)]
    resumed = [l.numpy().tolist() for _, l in data.to_tf_dataset(images, labels, 3, 16, 3, shuffle_seed=5,
                                                                   skip_batches=2)]
    assert first == again and resumed == first[2:] and sorted(sum(first, [])) == list(range(10))
    batch, _ = next(iter(data.to_tf_dataset(images, labels, 4, 16, 3)))
    assert batch.shape == (4, 16, 16, 3) and float(tf.reduce_max(batch)) <= 1.0
