"""TFRecord shards in the ImageNet layout: records, shard sets, scans, and naming a bad record."""
import os

import numpy as np
import pytest
import tensorflow as tf

from tfvgg.data import records

CLASSES = (("n01440764", "tench, Tinca tinca"), ("n01443537", "goldfish, Carassius auratus"))


def jpeg_bytes(seed, size=(6, 8)):
    rng = np.random.default_rng(seed)
    return tf.io.encode_jpeg(rng.integers(0, 256, (*size, 3)).astype(np.uint8)).numpy()


def example(i, label0, encoded=None):
    synset, text = CLASSES[label0]
    return records.make_example(jpeg_bytes(i) if encoded is None else encoded, label0 + 1, synset, text, 6, 8,
                                f"{synset}_{i}.JPEG")


def write_set(folder, split, per_shard):
    """Shards of ``split`` holding ``per_shard[k]`` records each; record i has label i % 2 (0-based)."""
    os.makedirs(folder, exist_ok=True)
    starts = np.cumsum([0] + list(per_shard))
    counts = records.write_shards(str(folder), split, [(example(i, i % 2) for i in range(lo, hi))
                                                       for lo, hi in zip(starts[:-1], starts[1:])])
    assert counts == list(per_shard)
    return records.list_shards(str(folder), split)


def test_a_record_stores_the_label_1_based_and_parses_0_based():
    ex = example(7, 1)
    features = ex.features.feature
    assert features["image/class/label"].int64_list.value == [2]
    assert features["image/format"].bytes_list.value == [b"JPEG"]
    assert features["image/colorspace"].bytes_list.value == [b"RGB"]
    assert features["image/class/text"].bytes_list.value == [CLASSES[1][1].encode()]
    assert features["image/filename"].bytes_list.value == [b"n01443537_7.JPEG"]
    assert [features[k].int64_list.value[0] for k in ("image/height", "image/width", "image/channels")] == [6, 8, 3]
    encoded, label = records.parse_record(tf.constant(ex.SerializeToString()))
    assert encoded.numpy() == jpeg_bytes(7) and label.dtype == tf.int64 and int(label) == 1
    ds = tf.data.Dataset.from_tensors(ex.SerializeToString()).map(records.parse_record)   # traced in a graph
    assert int(next(iter(ds))[1]) == 1


def test_only_the_image_and_label_are_required():
    bare = tf.train.Example(features=tf.train.Features(feature={
        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"abc"])),
        "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[5]))}))
    encoded, label = records.parse_record(bare.SerializeToString())
    assert encoded.numpy() == b"abc" and int(label) == 4


def test_list_shards_wants_a_complete_set(tmp_path):
    paths = write_set(tmp_path, "train", [2, 1, 1])
    assert [os.path.basename(p) for p in paths] == ["train-00000-of-00003", "train-00001-of-00003",
                                                    "train-00002-of-00003"]
    (tmp_path / "train-00000-of-00003.tmp-99").write_bytes(b"")   # an interrupted write: not a shard
    assert records.list_shards(str(tmp_path), "train") == paths
    with pytest.raises(FileNotFoundError, match=f"no validation shards in {tmp_path}: expected "
                                                f"validation-NNNNN-of-MMMMM"):
        records.list_shards(str(tmp_path), "validation")
    with pytest.raises(FileNotFoundError, match="TFRecord folder not found: .*missing"):
        records.list_shards(str(tmp_path / "missing"), "train")
    os.remove(paths[1])
    with pytest.raises(ValueError, match="train shards incomplete: train-00001-of-00003 missing"):
        records.list_shards(str(tmp_path), "train")
    write_set(tmp_path / "mixed", "train", [1])
    (tmp_path / "mixed" / "train-00000-of-00002").write_bytes(b"")
    with pytest.raises(ValueError, match="2 different sets .*train-00000-of-00001, train-00000-of-00002"):
        records.list_shards(str(tmp_path / "mixed"), "train")


def test_list_shards_expands_the_home_folder(tmp_path, monkeypatch):
    write_set(tmp_path / "shards", "validation", [1])
    monkeypatch.setenv("HOME", str(tmp_path))
    assert records.list_shards("~/shards", "validation") == [str(tmp_path / "shards" / "validation-00000-of-00001")]


def test_scan_counts_each_shard_and_collects_class_texts(tmp_path, monkeypatch):
    monkeypatch.setattr(records, "SCAN_BATCH", 2)   # several batches per shard
    paths = write_set(tmp_path, "train", [5, 1, 0, 3])
    info = records.scan_shards(paths)
    assert info.counts == [5, 1, 0, 3]
    assert info.class_texts == {0: CLASSES[0], 1: CLASSES[1]}
    assert records.locate_bad_record(paths) is None


def truncate(path, drop_bytes):
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[:-drop_bytes])


def test_a_truncated_shard_is_named_with_the_record(tmp_path, monkeypatch):
    monkeypatch.setattr(records, "SCAN_BATCH", 2)
    paths = write_set(tmp_path, "train", [2, 4])
    truncate(paths[1], 10)   # the last of its 4 records cut short
    where = f"{paths[1]} record 3: truncated or corrupt record"
    assert records.locate_bad_record(paths) == where
    assert records.locate_bad_record(paths, decode=False) == where
    with pytest.raises(ValueError, match=f"^{where} \\(truncated record at"):
        records.scan_shards(paths)


def test_a_corrupt_middle_record_is_named(tmp_path):
    path, = write_set(tmp_path, "train", [3])
    size = os.path.getsize(path)
    with open(path, "r+b") as f:   # flip a byte inside the second record's data: its checksum fails
        f.seek(size // 2)
        byte = f.read(1)
        f.seek(size // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert records.locate_bad_record([path]) == f"{path} record 1: truncated or corrupt record"
    with pytest.raises(ValueError, match=f"{path} record 1: truncated or corrupt record \\(corrupted record"):
        records.scan_shards([path])


def test_garbage_image_bytes_and_missing_features_are_named(tmp_path):
    path = str(tmp_path / "validation-00000-of-00001")
    records.write_shard(path, [example(0, 0), example(1, 1, encoded=b"\xff\xd8 not really a JPEG")])
    assert records.scan_shards([path]).counts == [2]   # a scan decodes nothing
    where = records.locate_bad_record([path])
    assert where.startswith(f"{path} record 1: not a decodable JPEG (") and "{{" not in where, where
    assert records.locate_bad_record([path], decode=False) is None
    no_image = tf.train.Example(features=tf.train.Features(feature={
        "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[1]))}))
    records.write_shard(path, [example(0, 0), example(1, 1), no_image])
    assert records.locate_bad_record([path]) == f"{path} record 2: no image/encoded feature"


def test_a_label_of_0_is_refused(tmp_path):
    path = str(tmp_path / "train-00000-of-00001")
    background = records.make_example(jpeg_bytes(0), 0, "", "background", 6, 8, "x.jpg")
    records.write_shard(path, [example(0, 0), background])
    with pytest.raises(ValueError, match=f"{path} record 1: label 0; labels are 1-based"):
        records.scan_shards([path])


def test_write_shard_leaves_nothing_behind_on_an_error(tmp_path):
    path = str(tmp_path / "train-00000-of-00001")

    def failing():
        yield example(0, 0)
        raise RuntimeError("source failed")
    with pytest.raises(RuntimeError):
        records.write_shard(path, failing())
    assert os.listdir(tmp_path) == []
