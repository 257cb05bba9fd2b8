"""Index a folder of images (one sub-folder per class) into train / validation / test lists, decoding nothing.

Two layouts:
  DIR/train/<class>/*.jpg [+ DIR/validation/<class>/ (or val/), DIR/test/<class>/]   (ImageNet's)
  DIR/<class>/*.jpg                                                                 (e.g. the 17-flower set)
Splits a folder does not have are held out of the training images by a seeded shuffle of each class, the same
on every run. Class names are the sorted class folders (of ``train/`` in the first layout); hidden folders
(``.name``) are left out.
"""
import os
from dataclasses import dataclass

import numpy as np


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp")
VALIDATION_FOLDERS = ("validation", "val")


@dataclass
class FolderIndex:
    """``splits``: "train", "validation" (maybe empty) [, "test"] -> list of (path, label), label 0-based into
    ``class_names``; grouped by class in label order."""
    class_names: tuple
    splits: dict


def index_image_folder(data_dir, validation_fraction=0.1, test_fraction=0.0, seed=0):
    """``data_dir`` in either layout -> ``FolderIndex``.

    Held-out splits take ``max(1, round(n * fraction))`` of a class's n images (n > 1 and fraction > 0), as
    ``arrays.load_image_folder`` does, always leaving at least one for training. "test" is a key only if
    ``DIR/test/`` exists or ``test_fraction`` > 0.
    """
    data_dir = os.path.expanduser(data_dir)
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"image folder not found: {data_dir}")
    if not 0 <= validation_fraction < 1 or not 0 <= test_fraction < 1 or validation_fraction + test_fraction >= 1:
        raise ValueError(f"validation_fraction ({validation_fraction}) and test_fraction ({test_fraction}) must be "
                         f"in [0, 1) and leave images for training")
    rng = np.random.default_rng(seed)
    if os.path.isdir(os.path.join(data_dir, "train")):
        return _index_split_folders(data_dir, validation_fraction, test_fraction, rng)
    stray = [name for name in VALIDATION_FOLDERS + ("test",) if os.path.isdir(os.path.join(data_dir, name))]
    if stray:
        raise ValueError(f"{data_dir} has {stray[0]}/ but no train/: put the training classes in "
                         f"{os.path.join(data_dir, 'train')}")
    classes = _class_folders(data_dir)
    splits = {"train": [], "validation": [], **({"test": []} if test_fraction > 0 else {})}
    _add_each_class(splits, data_dir, classes, {"test": test_fraction, "validation": validation_fraction}, rng)
    return FolderIndex(tuple(classes), splits)


def _index_split_folders(data_dir, validation_fraction, test_fraction, rng):
    """The ``DIR/train/<class>/`` layout; validation (and test) held out of train where their folders are missing."""
    classes = _class_folders(os.path.join(data_dir, "train"))
    folders = {"validation": _validation_folder(data_dir), "test": os.path.join(data_dir, "test")}
    folders = {split: path for split, path in folders.items() if path and os.path.isdir(path)}
    held = {"test": test_fraction, "validation": validation_fraction}
    splits = {"train": [], "validation": [], **({"test": []} if "test" in folders or test_fraction > 0 else {})}
    _add_each_class(splits, os.path.join(data_dir, "train"), classes,
                    {split: fraction for split, fraction in held.items() if split not in folders}, rng)
    for split, folder in folders.items():
        unknown = [name for name in _class_folders(folder, minimum=0) if name not in classes]
        if unknown:
            raise ValueError(f"{os.path.join(folder, unknown[0])}: a class with no folder in "
                             f"{os.path.join(data_dir, 'train')}")
        for label, name in enumerate(classes):
            if os.path.isdir(os.path.join(folder, name)):
                splits[split] += [(path, label) for path in _images(os.path.join(folder, name))]
    return FolderIndex(tuple(classes), splits)


def _validation_folder(data_dir):
    """``DIR/validation`` or ``DIR/val`` (None if neither); both at once is ambiguous."""
    found = [os.path.join(data_dir, name) for name in VALIDATION_FOLDERS if os.path.isdir(os.path.join(data_dir, name))]
    if len(found) > 1:
        raise ValueError(f"{data_dir} has both validation/ and val/; keep one")
    return found[0] if found else None


def _class_folders(folder, minimum=2):
    """Sorted names of ``folder``'s sub-folders (hidden ones left out); ValueError if fewer than ``minimum``."""
    classes = sorted(d for d in os.listdir(folder)
                     if not d.startswith(".") and os.path.isdir(os.path.join(folder, d)))
    if len(classes) < minimum:
        raise ValueError(f"{folder}: expected one sub-folder per class (at least {minimum}); found {len(classes)}")
    return classes


def _images(folder):
    """Sorted paths of the image files (``IMAGE_EXTENSIONS``, any case) in one class folder; ValueError if none."""
    files = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))
    if not files:
        raise ValueError(f"{folder}: no images ({', '.join(IMAGE_EXTENSIONS)})")
    return [os.path.join(folder, f) for f in files]


def _add_each_class(splits, root, classes, fractions, rng):
    """Append each class folder ``root/<class>``'s images to ``splits``, cut by ``_hold_out``."""
    for label, name in enumerate(classes):
        for split, paths in _hold_out(_images(os.path.join(root, name)), fractions, rng).items():
            splits[split] += [(path, label) for path in paths]


def _hold_out(paths, fractions, rng):
    """``paths`` shuffled by ``rng`` and cut into ``{split: fraction}`` parts (those above 0), the rest "train";
    each part sorted."""
    order = [paths[i] for i in rng.permutation(len(paths))]
    parts, start = {}, 0
    for split, fraction in fractions.items():
        if fraction > 0:
            n = max(1, int(round(len(paths) * fraction))) if len(paths) > 1 else 0
            n = max(0, min(n, len(paths) - start - 1))   # at least one image stays for training
            parts[split], start = sorted(order[start:start + n]), start + n
    parts["train"] = sorted(order[start:])
    return parts
