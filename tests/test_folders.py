"""Indexing image folders (both layouts) into train / validation / test lists without decoding."""
import os

import pytest

from tfvgg.data.folders import FolderIndex, index_image_folder


def touch_images(folder, n, ext=".jpg"):
    """``n`` empty files named like images: indexing never opens them."""
    os.makedirs(folder, exist_ok=True)
    for i in range(n):
        open(os.path.join(folder, f"{i:02d}{ext}"), "wb").close()


def flat_folder(root, sizes):
    """root/<class>/*.jpg with ``sizes[class]`` images each."""
    for name, n in sizes.items():
        touch_images(root / name, n)
    return root


def labels_of(index, split):
    return [label for _, label in index.splits[split]]


def test_class_folders_split_by_fraction_with_the_same_result_every_time(tmp_path):
    root = flat_folder(tmp_path, {"tulip": 10, "daisy": 20, "rose": 1})
    (tmp_path / "daisy" / "notes.txt").write_text("not an image")
    index = index_image_folder(str(root), validation_fraction=0.2, test_fraction=0.1, seed=3)
    assert isinstance(index, FolderIndex) and index.class_names == ("daisy", "rose", "tulip")
    assert set(index.splits) == {"train", "validation", "test"}
    # daisy: 20 -> 2 test, 4 validation; tulip: 10 -> 1 test, 2 validation; rose's one image stays for training
    assert labels_of(index, "test") == [0] * 2 + [2] * 1
    assert labels_of(index, "validation") == [0] * 4 + [2] * 2
    assert labels_of(index, "train") == [0] * 14 + [1] + [2] * 7
    every = [path for pairs in index.splits.values() for path, _ in pairs]
    assert len(every) == len(set(every)) == 31 and not any(p.endswith(".txt") for p in every)
    assert all(os.path.basename(os.path.dirname(p)) == index.class_names[label]
               for pairs in index.splits.values() for p, label in pairs)
    assert index_image_folder(str(root), 0.2, 0.1, seed=3) == index
    assert index_image_folder(str(root), 0.2, 0.1, seed=4).splits["validation"] != index.splits["validation"]


def test_without_test_fraction_there_is_no_test_split_and_small_fractions_round_up(tmp_path):
    root = flat_folder(tmp_path, {"a": 3, "b": 2})
    index = index_image_folder(str(root), validation_fraction=0.1)
    assert set(index.splits) == {"train", "validation"}
    assert labels_of(index, "validation") == [0, 1] and labels_of(index, "train") == [0, 0, 1]
    none_held = index_image_folder(str(root), validation_fraction=0.0)
    assert none_held.splits["validation"] == [] and len(none_held.splits["train"]) == 5


def test_split_folders_take_validation_and_test_as_they_are(tmp_path):
    for split, n in (("train", 4), ("validation", 2), ("test", 1)):
        touch_images(tmp_path / split / "cat", n)
        touch_images(tmp_path / split / "dog", n, ext=".PNG")
    index = index_image_folder(str(tmp_path), validation_fraction=0.5)
    assert index.class_names == ("cat", "dog")
    assert labels_of(index, "train") == [0] * 4 + [1] * 4
    assert labels_of(index, "validation") == [0, 0, 1, 1] and labels_of(index, "test") == [0, 1]
    assert index.splits["validation"][0] == (str(tmp_path / "validation" / "cat" / "00.jpg"), 0)


def test_split_folders_hold_validation_out_of_train_when_it_is_missing(tmp_path):
    touch_images(tmp_path / "train" / "cat", 10)
    touch_images(tmp_path / "train" / "dog", 10)
    index = index_image_folder(str(tmp_path), validation_fraction=0.3, seed=1)
    assert set(index.splits) == {"train", "validation"}
    assert labels_of(index, "validation") == [0] * 3 + [1] * 3 and len(index.splits["train"]) == 14
    assert all("/train/" in p for p, _ in index.splits["validation"])
    assert index_image_folder(str(tmp_path), validation_fraction=0.3, seed=1) == index


def test_val_is_an_alias_and_a_validation_folder_may_lack_classes(tmp_path):
    touch_images(tmp_path / "train" / "cat", 3)
    touch_images(tmp_path / "train" / "dog", 3)
    touch_images(tmp_path / "val" / "dog", 2)
    index = index_image_folder(str(tmp_path))
    assert labels_of(index, "validation") == [1, 1] and len(index.splits["train"]) == 6
    touch_images(tmp_path / "validation" / "dog", 1)
    with pytest.raises(ValueError, match="both validation/ and val/"):
        index_image_folder(str(tmp_path))


def test_a_class_only_in_validation_is_named(tmp_path):
    touch_images(tmp_path / "train" / "cat", 3)
    touch_images(tmp_path / "train" / "dog", 3)
    touch_images(tmp_path / "validation" / "cow", 1)
    with pytest.raises(ValueError, match=r"validation/cow: a class with no folder in .*train"):
        index_image_folder(str(tmp_path))


def test_errors_name_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"image folder not found: {tmp_path / 'nope'}"):
        index_image_folder(str(tmp_path / "nope"))
    touch_images(tmp_path / "one" / "only", 3)
    with pytest.raises(ValueError, match="one: expected one sub-folder per class .* found 1"):
        index_image_folder(str(tmp_path / "one"))
    flat_folder(tmp_path / "empty", {"a": 2})
    os.makedirs(tmp_path / "empty" / "b")
    with pytest.raises(ValueError, match=r"empty/b: no images \(\.jpg"):
        index_image_folder(str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="leave images for training"):
        index_image_folder(str(tmp_path / "one"), validation_fraction=0.6, test_fraction=0.4)
    touch_images(tmp_path / "stray" / "validation" / "a", 1)
    with pytest.raises(ValueError, match="has validation/ but no train/"):
        index_image_folder(str(tmp_path / "stray"))


def test_tilde_is_expanded(tmp_path, monkeypatch):
    flat_folder(tmp_path / "flowers", {"a": 2, "b": 2})
    monkeypatch.setenv("HOME", str(tmp_path))
    assert index_image_folder("~/flowers").class_names == ("a", "b")
