"""The VGG paper's training augmentation and test-time crops (Simonyan & Zisserman 2014, sections 3.1 and 3.2).

Training (3.1): the image is rescaled isotropically so that its shorter side is the training scale S,
either fixed (S = 256 or 384) or drawn per image from [Smin, Smax] = [256, 512] (scale jitter); a random
224x224 crop is taken and flipped horizontally at random. The paper also shifts the colours at random
along the RGB principal components (AlexNet's "PCA lighting"); we leave that out. Mean subtraction is
``tfvgg.images.preprocess(x, "rgb_mean")``, applied by ``pipeline.Preprocessing``, not here.

Testing (3.2): the shorter side is rescaled to the test scale Q (Q = S for a fixed S, 0.5 (Smin + Smax)
for a jittered one) and we take the central crop, or the 10 crops of ``ten_crops``.

Scales are written for the paper's 224 crop and scale with the crop (``scaled``): a 112 crop trains
at S = 128 where the paper says 256. Every function here is graph-compatible for ``tf.data`` ``.map``:
images are uint8 ``[H, W, C]`` (C = 1 or 3) with H and W unknown until run time, and all randomness is
stateless, drawn from a ``seed`` tensor, so the same (image, seed) always gives the same crop.
"""
import dataclasses
import numbers

import tensorflow as tf

REFERENCE_CROP = 224   # the paper's crop: the crop size scales are written for


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def scaled(value, crop):
    """A scale written for a 224 crop -> pixels for a ``crop`` crop: ``round(value * crop / 224)``, >= ``crop``."""
    return max(crop, round(value * crop / REFERENCE_CROP))


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """The paper's augmentation for ``crop`` x ``crop`` network inputs.

    ``train_scale``: ``(S,)`` or ``(Smin, Smax)``, for a 224 crop. ``test_scale``: Q for a 224 crop; None
    gives S, or the middle of the jitter range. ``flip``: random horizontal flips in training.
    The pixel values are the properties ``scale_range`` and ``test_size``.
    """
    crop: int
    train_scale: tuple = (256,)
    test_scale: int = None
    flip: bool = True

    def __post_init__(self):
        scales = (self.train_scale,) if isinstance(self.train_scale, numbers.Integral) else self.train_scale
        if not _is_int(self.crop) or self.crop < 1:
            raise ValueError(f"crop must be a positive integer (the image size); got {self.crop!r}")
        if not all(_is_int(v) for v in scales) or len(scales) not in (1, 2):
            raise ValueError(f"train_scale takes 1 integer (S) or 2 (Smin, Smax); got {self.train_scale!r}")
        if min(scales) < REFERENCE_CROP:
            raise ValueError(f"train_scale values must be >= {REFERENCE_CROP} (they are written for a 224 crop "
                             f"and scaled to crop={self.crop}); got {tuple(scales)}")
        if scales[0] > scales[-1]:
            raise ValueError(f"train_scale must be (Smin, Smax) with Smin <= Smax; got {tuple(scales)}")
        if self.test_scale is not None and (not _is_int(self.test_scale)
                                            or self.test_scale < REFERENCE_CROP):
            raise ValueError(f"test_scale must be None or an integer >= {REFERENCE_CROP} (for a 224 crop); "
                             f"got {self.test_scale!r}")
        if not isinstance(self.flip, bool):
            raise ValueError(f"flip must be True or False; got {self.flip!r}")
        object.__setattr__(self, "crop", int(self.crop))
        object.__setattr__(self, "train_scale", tuple(int(v) for v in scales))
        if self.test_scale is not None:
            object.__setattr__(self, "test_scale", int(self.test_scale))

    @property
    def scale_range(self):
        """``(smin, smax)``: the training scale's bounds in pixels (equal for a fixed S)."""
        return scaled(self.train_scale[0], self.crop), scaled(self.train_scale[-1], self.crop)

    @property
    def test_size(self):
        """Q in pixels: ``test_scale``, else S, else the middle of the jitter range, scaled with the crop."""
        return scaled(self._reference_test_scale, self.crop)

    @property
    def _reference_test_scale(self):
        return self.test_scale or 0.5 * (self.train_scale[0] + self.train_scale[-1])

    def describe(self):
        """One line for logs, in pixels, e.g. ``S 256..512 px (scale jitter), random 224x224 crop, ...``."""
        smin, smax = self.scale_range
        train = f"S {smin} px" if smin == smax else f"S {smin}..{smax} px (scale jitter)"
        flip = ", random flip" if self.flip else ""
        line = f"{train}, random {self.crop}x{self.crop} crop{flip}; test Q {self.test_size} px, centre crop"
        if self.crop != REFERENCE_CROP:
            line += f" (for a 224 crop: S {'..'.join(map(str, self.train_scale))}, Q {self._reference_test_scale:g})"
        return line

    def to_json(self):
        """A JSON-ready dict; ``from_json`` reads it back."""
        return {"crop": self.crop, "train_scale": list(self.train_scale), "test_scale": self.test_scale,
                "flip": self.flip}

    @classmethod
    def from_json(cls, values):
        unknown = sorted(set(values) - {"crop", "train_scale", "test_scale", "flip"})
        if unknown:
            raise ValueError(f"unknown augmentation fields {', '.join(unknown)} (written by a newer tfvgg?)")
        return cls(values["crop"], tuple(values["train_scale"]), values.get("test_scale"), values.get("flip", True))


def resize_shorter_side(image, size):
    """``[H, W, C]`` pixels in [0, 255], any dtype -> float32 ``[H', W', C]`` with ``min(H', W') == size``.

    Isotropic: the longer side becomes ``round(side * size / shorter side)``. Bilinear with antialiasing;
    the result is clipped to [0, 255] (the filter's weights are positive, so only float rounding can
    leave it). ``size``: a Python int or an integer scalar tensor, in pixels.
    """
    hw = tf.cast(tf.shape(image)[:2], tf.float64)
    new_hw = tf.cast(tf.round(hw * (tf.cast(size, tf.float64) / tf.reduce_min(hw))), tf.int32)
    new_hw = tf.maximum(new_hw, tf.cast(size, tf.int32))
    resized = tf.image.resize(tf.cast(image, tf.float32), new_hw, method="bilinear", antialias=True)
    return tf.clip_by_value(resized, 0.0, 255.0)


def central_crop(image, size):
    """``[H, W, C]`` -> the central ``[size, size, C]`` (offsets rounded down); H, W >= ``size``."""
    shape = tf.shape(image)
    return tf.image.crop_to_bounding_box(image, (shape[0] - size) // 2, (shape[1] - size) // 2, size, size)


def _seeds(seed):
    """Three independent stateless seeds ``[2]`` from one: for the scale, the crop and the flip."""
    return tf.unstack(tf.random.experimental.stateless_split(seed, 3))


def draw_scale(aug, seed):
    """The training scale S that ``train_image(image, aug, seed)`` uses: int32 scalar, pixels, uniform in
    ``aug.scale_range`` (both ends included). ``seed``: int32 or int64 ``[2]``."""
    smin, smax = aug.scale_range
    return tf.random.stateless_uniform([], _seeds(seed)[0], minval=smin, maxval=smax + 1, dtype=tf.int32)


def train_image(image, aug, seed):
    """uint8 ``[H, W, C]`` -> float32 ``[crop, crop, C]`` in [0, 255]: the paper's training augmentation.

    Shorter side to S (``draw_scale``), a random ``crop`` x ``crop`` crop, a random horizontal flip if
    ``aug.flip``. ``seed``: int32 or int64 ``[2]``; the same (image, seed) gives the same output.
    """
    _, crop_seed, flip_seed = _seeds(seed)
    image = resize_shorter_side(image, draw_scale(aug, seed))
    size = tf.concat([[aug.crop, aug.crop], tf.shape(image)[2:]], 0)
    image = tf.image.stateless_random_crop(image, size, crop_seed)
    if aug.flip:
        image = tf.image.stateless_random_flip_left_right(image, flip_seed)
    return image


def eval_image(image, aug):
    """uint8 ``[H, W, C]`` -> float32 ``[crop, crop, C]`` in [0, 255]: shorter side to Q, the central crop."""
    return central_crop(resize_shorter_side(image, aug.test_size), aug.crop)


def ten_crops(image, aug):
    """uint8 ``[H, W, C]`` -> float32 ``[10, crop, crop, C]`` in [0, 255]: multi-crop evaluation at Q.

    Crops 0..4: top-left, top-right, bottom-left, bottom-right corner and the centre (= ``eval_image``);
    crops 5..9: their mirror images, whatever ``aug.flip`` says. This is AlexNet's 10-crop; the paper's
    multi-crop took a 5x5 grid of crops and their flips at each of 3 scales (150 crops).
    """
    image = resize_shorter_side(image, aug.test_size)
    shape, size = tf.shape(image), aug.crop
    bottom, right = shape[0] - size, shape[1] - size
    corners = [tf.image.crop_to_bounding_box(image, top, left, size, size)
               for top, left in ((0, 0), (0, right), (bottom, 0), (bottom, right))]
    crops = tf.stack(corners + [central_crop(image, size)])
    return tf.concat([crops, tf.reverse(crops, axis=[2])], 0)
