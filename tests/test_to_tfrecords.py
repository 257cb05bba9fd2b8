"""The folder-to-shards converter: what it writes reads back through ``records``."""
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfvgg.data import records
from tfvgg.data.to_tfrecords import class_rows, convert, read_labels_file, rgb_jpeg

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSES = ("cat", "dog", "fox")


def write_image(path, seed, fmt="jpeg", channels=3, size=(10, 14)):
    """A tiny image file: JPEG, PNG (``channels`` 1, 3 or 4) or BMP."""
    pixels = np.random.default_rng(seed).integers(0, 256, (*size, channels)).astype(np.uint8)
    encoded = {"jpeg": tf.io.encode_jpeg, "png": tf.io.encode_png}[fmt](pixels)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tf.io.write_file(str(path), encoded)


def class_folder(root, per_class=4):
    """root/<class>/*: JPEGs, one grey JPEG, one RGBA PNG (12 images for 3 classes)."""
    for label, name in enumerate(CLASSES):
        for i in range(per_class):
            write_image(root / name / f"{i}.jpg", seed=10 * label + i, size=(10 + i, 14))
    write_image(root / "dog" / "grey.jpg", seed=90, channels=1)
    write_image(root / "fox" / "alpha.png", seed=91, fmt="png", channels=4, size=(7, 9))
    return root


def read_back(paths):
    """[(label 0-based, decoded image, example features)] of every record in ``paths``."""
    out = []
    for record in tf.data.TFRecordDataset(paths):
        encoded, label = records.parse_record(record)
        features = tf.train.Example.FromString(record.numpy()).features.feature
        out.append((int(label), tf.io.decode_jpeg(encoded).numpy(), features))
    return out


def test_a_class_folder_becomes_shards_that_read_back(tmp_path):
    root = class_folder(tmp_path / "images")
    done = convert(str(root), str(tmp_path / "out"), train_shards=3, validation_shards=2, validation_fraction=0.25,
                   seed=1)
    train, validation = (records.list_shards(str(tmp_path / "out"), split) for split in ("train", "validation"))
    assert len(train) == 3 and len(validation) == 2 and set(done.splits) == {"train", "validation"}
    info = records.scan_shards(train + validation)
    assert sum(info.counts) == 14 and max(info.counts[:3]) - min(info.counts[:3]) <= 1
    assert sum(info.counts[3:]) == 3   # a quarter of each class's 4 or 5 images, rounded
    assert info.class_texts == {i: (name, name) for i, name in enumerate(CLASSES)}
    back = read_back(train + validation)
    assert sorted(label for label, _, _ in back) == [0] * 4 + [1] * 5 + [2] * 5
    for label, image, features in back:
        assert image.shape[2] == 3 and features["image/class/label"].int64_list.value == [label + 1]
        assert features["image/class/synset"].bytes_list.value == [CLASSES[label].encode()]
        assert list(image.shape[:2]) == [features["image/height"].int64_list.value[0],
                                         features["image/width"].int64_list.value[0]]
    by_name = {f["image/filename"].bytes_list.value[0].decode(): (f, image) for _, image, f in back}
    assert by_name["alpha.png"][1].shape == (7, 9, 3) and by_name["grey.jpg"][1].shape == (10, 14, 3)
    with open(root / "cat" / "2.jpg", "rb") as f:   # a colour JPEG is copied byte for byte
        assert f.read() in {features["image/encoded"].bytes_list.value[0] for _, _, features in back}
    with open(tmp_path / "out" / "labels.txt") as f:
        assert f.read() == "cat\tcat\ndog\tdog\nfox\tfox\n"


def test_the_record_order_follows_the_seed(tmp_path):
    root = class_folder(tmp_path / "images")

    def order(out, seed):
        convert(str(root), str(tmp_path / out), train_shards=2, validation_fraction=0.25, seed=seed)
        return [f["image/encoded"].bytes_list.value[0]
                for _, _, f in read_back(records.list_shards(str(tmp_path / out), "train"))]
    first = order("a", 5)
    assert order("b", 5) == first
    assert order("c", 6) != first


def test_split_folders_with_test_and_a_labels_file(tmp_path):
    root = tmp_path / "images"
    for split, n in (("train", 3), ("val", 1), ("test", 2)):
        for label, name in enumerate(("n02", "n01")):
            for i in range(n):
                write_image(root / split / name / f"{i}.jpeg", seed=100 * label + 10 * i + len(split))
    labels = tmp_path / "synsets.txt"
    labels.write_text("n01 tench, Tinca tinca\nn02\tgoldfish\nn03 unused\n")
    done = convert(str(root), str(tmp_path / "out"), train_shards=8, test_shards=1, labels_file=str(labels))
    assert {split: sum(r.counts) for split, r in done.splits.items()} == {"train": 6, "validation": 2, "test": 4}
    assert len(done.splits["train"].shards) == 6   # fewer shards than asked: one image each
    info = records.scan_shards(records.list_shards(str(tmp_path / "out"), "test"))
    assert info.counts == [4] and info.class_texts == {0: ("n01", "tench, Tinca tinca"), 1: ("n02", "goldfish")}
    assert read_labels_file(str(tmp_path / "out" / "labels.txt")) == {"n01": "tench, Tinca tinca",
                                                                      "n02": "goldfish"}


def test_a_labels_file_must_cover_every_class(tmp_path):
    labels = tmp_path / "synsets.txt"
    labels.write_text("n01 tench\n")
    with pytest.raises(ValueError, match="synsets.txt: no line for class n02 .1 of 2"):
        class_rows(("n01", "n02"), str(labels))
    with pytest.raises(FileNotFoundError, match="labels file not found"):
        class_rows(("n01",), str(tmp_path / "missing.txt"))


def test_output_that_holds_shards_is_refused(tmp_path):
    root = class_folder(tmp_path / "images", per_class=2)
    os.makedirs(tmp_path / "out")
    (tmp_path / "out" / "notes.txt").write_text("other files are fine")
    convert(str(root), str(tmp_path / "out"), train_shards=1, validation_shards=1)
    with pytest.raises(FileExistsError, match="already holds shards .train-00000-of-00001"):
        convert(str(root), str(tmp_path / "out"))


def test_an_undecodable_image_stops_the_conversion_or_is_skipped(tmp_path):
    root = class_folder(tmp_path / "images")
    (root / "dog" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut short")
    with pytest.raises(ValueError, match=r"dog/broken\.jpg: not a decodable image .*--skip_bad_images"):
        convert(str(root), str(tmp_path / "stopped"), train_shards=2, validation_fraction=0.0)
    assert os.listdir(tmp_path / "stopped") == []   # no half-written set left behind
    done = convert(str(root), str(tmp_path / "skipped"), train_shards=2, validation_fraction=0.0,
                   skip_bad_images=True)
    assert done.splits["train"].skipped == [str(root / "dog" / "broken.jpg")]
    assert sum(records.scan_shards(records.list_shards(str(tmp_path / "skipped"), "train")).counts) == 14


def test_a_truncated_jpeg_is_caught_although_its_header_is_whole(tmp_path):
    write_image(tmp_path / "whole.jpg", seed=0, size=(32, 32))
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[:len(data) * 2 // 3])
    assert rgb_jpeg(str(tmp_path / "whole.jpg")) == (data, 32, 32)
    with pytest.raises(ValueError, match=r"cut\.jpg: not a decodable image \(jpeg::Uncompress failed"):
        rgb_jpeg(str(tmp_path / "cut.jpg"))


def test_cmyk_jpeg_bmp_and_gif_become_rgb_jpegs(tmp_path):
    image = pytest.importorskip("PIL.Image")
    red = image.fromarray(np.full((6, 8, 3), (200, 30, 30), np.uint8))
    red.convert("CMYK").save(tmp_path / "cmyk.jpg", "JPEG", quality=100)
    red.convert("L").save(tmp_path / "grey.bmp")
    red.save(tmp_path / "red.gif")
    for name in ("cmyk.jpg", "grey.bmp", "red.gif"):
        encoded, height, width = rgb_jpeg(str(tmp_path / name))
        pixels = tf.io.decode_jpeg(encoded).numpy()
        assert (height, width) == (6, 8) and pixels.shape == (6, 8, 3), name
        expected = (200, 30, 30) if name != "grey.bmp" else (pixels[0, 0, 0],) * 3   # grey: R = G = B
        np.testing.assert_allclose(pixels.reshape(-1, 3).mean(0), expected, atol=4, err_msg=name)


@pytest.mark.slow
def test_the_command_line(tmp_path):
    root = class_folder(tmp_path / "images", per_class=2)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": REPO}
    command = [sys.executable, "-m", "tfvgg.data.to_tfrecords", f"--input_dir={root}",
               f"--output_dir={tmp_path / 'out'}", "--train_shards=2", "--validation_shards=1"]
    first = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "train: 5 images in 2 shards" in first.stdout and "validation: 3 images in 1 shard " in first.stdout
    again = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "error: " in again.stderr and "already holds shards" in again.stderr
    assert "Traceback" not in again.stderr
