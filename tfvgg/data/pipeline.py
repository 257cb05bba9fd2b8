"""From a ``Source``'s stored images to batches the network takes: ``Preprocessing`` and ``batches``.

``Preprocessing`` is what a run did to its images, kept in the run directory so
serving does the same: the image size and channels, the paper's augmentation
(``augment.Augmentation``) or a plain resize, and the pixel scale ("unit":
[0, 1]; "rgb_mean": 0..255 minus the paper's RGB mean).
"""
import dataclasses

import tensorflow as tf

from tfvgg.data.augment import Augmentation, eval_image, ten_crops, train_image
from tfvgg.images import preprocess

PIXELS = ("unit", "rgb_mean")


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """``image_size`` x ``image_size`` x ``channels`` network input; ``augmentation`` None = resize only."""
    image_size: int
    channels: int
    augmentation: Augmentation = None
    pixels: str = "unit"

    def __post_init__(self):
        if self.pixels not in PIXELS:
            raise ValueError(f"pixels must be one of {', '.join(PIXELS)}; got {self.pixels!r}")
        if self.pixels == "rgb_mean" and self.channels != 3:
            raise ValueError(f"the RGB mean needs 3 channels; the network takes {self.channels}")
        if self.augmentation is not None and self.augmentation.crop != self.image_size:
            raise ValueError(f"augmentation crop {self.augmentation.crop} != image_size {self.image_size}")

    def train_input(self, image, seed):
        """uint8 ``[H, W, C]`` -> float32 ``[S, S, channels]`` for training; ``seed`` int64 ``[2]`` (stateless)."""
        if self.augmentation is None:
            return self.eval_input(image)
        return self._pixels(train_image(self._channels(image), self.augmentation, seed))

    def eval_input(self, image):
        """uint8 ``[H, W, C]`` -> float32 ``[S, S, channels]``: shorter side to Q and the centre crop, or a resize."""
        image = self._channels(image)
        if self.augmentation is not None:
            return self._pixels(eval_image(image, self.augmentation))
        resized = tf.image.resize(tf.cast(image, tf.float32), (self.image_size, self.image_size))
        return self._pixels(resized)

    def ten_crop_input(self, image):
        """uint8 ``[H, W, C]`` -> float32 ``[10, S, S, channels]`` (corners, centre and their mirrors)."""
        if self.augmentation is None:
            raise ValueError("multi-crop evaluation needs the augmentation's test scale (--augment=paper)")
        return self._pixels(ten_crops(self._channels(image), self.augmentation))

    def _channels(self, image):
        """float32 with the network's channels (converted in float, so stored and served images agree)."""
        image = tf.cast(image, tf.float32)
        if image.shape[-1] == self.channels:
            return image
        return tf.image.grayscale_to_rgb(image) if self.channels == 3 else tf.image.rgb_to_grayscale(image)

    def _pixels(self, image):
        """float32 in [0, 255] -> the run's pixel scale."""
        return image / 255.0 if self.pixels == "unit" else preprocess(image, "rgb_mean")

    def to_json(self):
        return {"image_size": self.image_size, "channels": self.channels, "pixels": self.pixels,
                "augmentation": None if self.augmentation is None else self.augmentation.to_json()}

    @classmethod
    def from_json(cls, values):
        aug = values.get("augmentation")
        return cls(int(values["image_size"]), int(values["channels"]),
                   None if aug is None else Augmentation.from_json(aug), values.get("pixels", "unit"))


def batches(source, split, batch_size, prep, shuffle_seed=None, skip_batches=0, limit=0, skip_bad=False,
            drop_remainder=False):
    """``(images float32 [N, S, S, C], labels int64 [N])`` of ``split``, prefetched.

    ``shuffle_seed`` None: a fixed order and the evaluation transform; an int: that seed's order and the
    training transform, each image's augmentation seeded by (``shuffle_seed``, its position), so an epoch
    replays exactly after a resume (``skip_batches`` already done). ``limit``: the first N images only.
    ``skip_bad``: undecodable images are dropped (TensorFlow logs each) instead of stopping the run.
    ``drop_remainder``: every batch full, so the batch size is part of the static shape (tuned convolutions are
    chosen per batch size; an unknown batch falls back to the fixed rule).
    """
    ds = source.images(split, shuffle_seed, limit)
    if skip_bad:
        ds = ds.ignore_errors(log_warning=True)
    if shuffle_seed is None:
        ds = ds.map(lambda image, label: (prep.eval_input(image), label), num_parallel_calls=tf.data.AUTOTUNE)
    else:
        ds = ds.enumerate().map(
            lambda i, pair: (prep.train_input(pair[0], tf.stack([tf.constant(shuffle_seed, tf.int64), i])), pair[1]),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if skip_batches:
        ds = ds.skip(skip_batches)
    return ds.prefetch(tf.data.AUTOTUNE)
