"""The paper's augmentation (tfvgg.data.augment): shapes under dynamic sizes, scales, seeds, flips and crops."""
import json

import numpy as np
import pytest
import tensorflow as tf

from tfvgg.data import augment
from tfvgg.data.augment import Augmentation, draw_scale, eval_image, resize_shorter_side, ten_crops, train_image


def _traced(fn, channels):
    """``fn(image, *args)`` as a tf.function whose image has unknown H and W (the tf.data case)."""
    return tf.function(fn, input_signature=[tf.TensorSpec([None, None, channels], tf.uint8)], reduce_retracing=True)


def _seed(a, b=0, dtype=tf.int64):
    return tf.constant([a, b], dtype)


def _ramp_image(height, width):
    """uint8 [H, W, 3]: channel 0 = column index, channel 1 = row index, channel 2 = 7, so a crop tells its offset."""
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return tf.constant(np.stack([cols, rows, np.full_like(rows, 7)], -1).astype(np.uint8))


@pytest.mark.parametrize("height,width,channels", [(40, 70, 3), (70, 40, 3), (50, 50, 3), (45, 60, 1)])
def test_output_shapes_and_dtypes_with_dynamic_sizes(rng, height, width, channels):
    aug = Augmentation(32, (256, 512))   # S in [37, 73] px, Q 55 px
    image = tf.constant(rng.integers(0, 256, size=(height, width, channels), dtype=np.uint8))
    train = tf.function(lambda x, seed: train_image(x, aug, seed),
                        input_signature=[tf.TensorSpec([None, None, channels], tf.uint8), tf.TensorSpec([2], tf.int64)])
    evaluate = _traced(lambda x: eval_image(x, aug), channels)
    crops = _traced(lambda x: ten_crops(x, aug), channels)
    for fn, args, shape in ((train, (image, _seed(1)), (32, 32, channels)), (evaluate, (image,), (32, 32, channels)),
                            (crops, (image,), (10, 32, 32, channels))):
        assert fn.get_concrete_function().structured_outputs.shape == shape   # static: the network's params need it
        out = fn(*args)
        assert out.shape == shape and out.dtype == tf.float32
        assert 0.0 <= float(tf.reduce_min(out)) and float(tf.reduce_max(out)) <= 255.0


@pytest.mark.parametrize("height,width,size,expected", [(300, 400, 256, (256, 341)), (400, 300, 256, (341, 256)),
                                                       (60, 60, 37, (37, 37)), (20, 33, 64, (64, 106)),
                                                       (513, 256, 224, (449, 224))])
def test_resize_shorter_side(rng, height, width, size, expected):
    image = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    fn = tf.function(resize_shorter_side, input_signature=[tf.TensorSpec([None, None, 3], tf.uint8),
                                                            tf.TensorSpec([], tf.int32)])
    out = fn(image, size)
    assert out.shape == (*expected, 3) and out.dtype == tf.float32
    assert min(out.shape[:2]) == size
    hand = tf.image.resize(image.astype(np.float32), expected, method="bilinear", antialias=True)
    np.testing.assert_allclose(out.numpy(), np.clip(hand.numpy(), 0, 255), atol=1e-4)


def test_resize_clips_to_the_pixel_range():
    # float input a little outside [0, 255] (e.g. after another filter): the result is clipped back.
    image = np.full((4, 6, 1), -20.0, np.float32)
    image[:, 3:] = 300.0
    out = resize_shorter_side(image, 41).numpy()
    assert out.min() == 0.0 and out.max() == 255.0


def test_draw_scale_covers_the_jitter_range_inclusive():
    aug = Augmentation(224, (256, 260))
    draws = [int(draw_scale(aug, _seed(i))) for i in range(120)]
    assert set(draws) == {256, 257, 258, 259, 260}
    assert [int(draw_scale(aug, _seed(i, dtype=tf.int32))) for i in range(5)] == \
        [int(draw_scale(aug, _seed(i, dtype=tf.int32))) for i in range(5)]
    assert {int(draw_scale(Augmentation(224, (384,)), _seed(i))) for i in range(10)} == {384}


def test_train_image_uses_the_drawn_scale():
    # A 100x100 image whose value is 2 x column: after the shorter side goes to S, a crop's slope is 200 / S.
    aug = Augmentation(112, (256, 512), flip=False)   # S in [128, 256] px
    ramp = tf.constant(np.tile((2 * np.arange(100)).astype(np.uint8)[None, :, None], (100, 1, 3)))
    for i in range(6):
        seed = _seed(i, 3)
        out = train_image(ramp, aug, seed).numpy()[:, :, 0]
        slope = np.median(np.diff(out, axis=1))
        assert 200.0 / slope == pytest.approx(int(draw_scale(aug, seed)), abs=0.05)


def test_same_seed_same_output_different_seeds_different_crops(rng):
    aug = Augmentation(32, (256, 512))
    image = tf.constant(rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8))
    first = train_image(image, aug, _seed(5, 9)).numpy()
    traced = tf.function(lambda x, seed: train_image(x, aug, seed),
                         input_signature=[tf.TensorSpec([None, None, 3], tf.uint8), tf.TensorSpec([2], tf.int64)])
    np.testing.assert_array_equal(train_image(image, aug, _seed(5, 9)).numpy(), first)
    np.testing.assert_array_equal(traced(image, _seed(5, 9)).numpy(), first)   # graph = eager: a resume replays
    others = [train_image(image, aug, _seed(5, i)).numpy() for i in range(8)]
    assert len({o.tobytes() for o in others + [first]}) == 9


def test_crops_are_crops_at_random_offsets():
    # Shorter side already S (128 px at a 112 crop): the resize is the identity and each crop is a window.
    aug = Augmentation(112, (256,), flip=False)
    image = _ramp_image(128, 150)
    offsets = set()
    for i in range(10):
        out = train_image(image, aug, _seed(i)).numpy()
        top, left = int(round(out[0, 0, 1])), int(round(out[0, 0, 0]))
        np.testing.assert_allclose(out, image.numpy()[top:top + 112, left:left + 112].astype(np.float32), atol=1e-3)
        offsets.add((top, left))
    assert len(offsets) == 10


def test_flip_mirrors_the_same_crop():
    flipping, plain = Augmentation(112, (256,)), Augmentation(112, (256,), flip=False)
    image = _ramp_image(128, 150)
    flipped = 0
    for i in range(16):
        with_flip, without = train_image(image, flipping, _seed(i)).numpy(), train_image(image, plain, _seed(i)).numpy()
        if np.array_equal(with_flip, without):
            continue
        np.testing.assert_array_equal(with_flip, tf.reverse(without, axis=[1]).numpy())
        flipped += 1
    assert 0 < flipped < 16


@pytest.mark.parametrize("height,width", [(256, 341), (300, 400)])
def test_eval_image_is_the_central_crop_at_q(rng, height, width):
    aug = Augmentation(224, (256,))
    assert aug.test_size == 256
    image = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    resized = tf.image.resize(image.astype(np.float32), (256, 341), method="bilinear", antialias=True).numpy()
    hand = np.clip(resized[16:240, 58:282], 0, 255)   # (256 - 224) // 2 = 16, (341 - 224) // 2 = 58
    out = _traced(lambda x: eval_image(x, aug), 3)(image).numpy()
    np.testing.assert_allclose(out, hand, atol=1e-4)


def test_ten_crops_corners_centre_and_mirrors(rng):
    aug = Augmentation(32, (256,))   # Q = S = 37 px
    image = rng.integers(0, 256, size=(40, 52, 3), dtype=np.uint8)   # -> 37x48
    crops = _traced(lambda x: ten_crops(x, aug), 3)(image).numpy()
    resized = resize_shorter_side(image, 37).numpy()
    assert resized.shape == (37, 48, 3)
    for i, (top, left) in enumerate([(0, 0), (0, 16), (5, 0), (5, 16)]):
        np.testing.assert_array_equal(crops[i], resized[top:top + 32, left:left + 32])
    np.testing.assert_array_equal(crops[4], eval_image(image, aug).numpy())
    np.testing.assert_array_equal(crops[5:], crops[:5, :, ::-1])
    assert not np.array_equal(crops[0], crops[3])


def test_in_a_tf_data_map():
    aug = Augmentation(32, (256, 512))
    shapes = [(40, 70), (70, 40), (33, 33)]
    ds = tf.data.Dataset.from_generator(lambda: (np.zeros((*hw, 3), np.uint8) for hw in shapes),
                                        output_signature=tf.TensorSpec([None, None, 3], tf.uint8))
    ds = ds.enumerate().map(lambda i, x: train_image(x, aug, tf.stack([tf.constant(7, tf.int64), i])))
    assert ds.element_spec.shape == (32, 32, 3)
    assert [tuple(x.shape) for x in ds] == [(32, 32, 3)] * 3


def test_scales_follow_the_crop():
    assert augment.scaled(256, 224) == 256 and augment.scaled(256, 112) == 128 and augment.scaled(100, 224) == 224
    assert Augmentation(224, (256,)).scale_range == (256, 256) and Augmentation(224, (256,)).test_size == 256
    assert Augmentation(224, (256, 512)).test_size == 384
    small = Augmentation(112, (256, 512))
    assert small.scale_range == (128, 256) and small.test_size == 192
    assert Augmentation(112, (256,)).scale_range == (128, 128) and Augmentation(112, (256,)).test_size == 128
    assert Augmentation(112, (256, 512), test_scale=256).test_size == 128
    assert Augmentation(32, (256,)).scale_range == (37, 37)   # round(256 * 32 / 224) = round(36.57)
    assert Augmentation(224, 384).train_scale == (384,)


def test_describe_is_one_line_in_pixels():
    line = Augmentation(112, (256, 512)).describe()
    assert "\n" not in line
    assert "S 128..256 px" in line and "112x112" in line and "Q 192 px" in line and "flip" in line
    assert "flip" not in Augmentation(224, (256,), flip=False).describe()


@pytest.mark.parametrize("kwargs,message", [
    (dict(crop=0, train_scale=(256,)), "crop must be a positive integer"),
    (dict(crop=224, train_scale=()), "train_scale takes 1 integer"),
    (dict(crop=224, train_scale=(256, 384, 512)), "train_scale takes 1 integer"),
    (dict(crop=224, train_scale=(256.5,)), "train_scale takes 1 integer"),
    (dict(crop=224, train_scale=(200,)), r"train_scale values must be >= 224 .*got \(200,\)"),
    (dict(crop=112, train_scale=(128, 256)), r"train_scale values must be >= 224"),
    (dict(crop=224, train_scale=(512, 256)), r"Smin <= Smax; got \(512, 256\)"),
    (dict(crop=224, train_scale=(256,), test_scale=200), "test_scale must be None or an integer >= 224"),
    (dict(crop=224, train_scale=(256,), flip="yes"), "flip must be True or False"),
])
def test_validation_names_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Augmentation(**kwargs)


@pytest.mark.parametrize("aug", [Augmentation(224, (256,)), Augmentation(112, (256, 512)),
                                 Augmentation(64, (384,), test_scale=448, flip=False)])
def test_json_round_trip(aug):
    values = json.loads(json.dumps(aug.to_json()))
    assert values["train_scale"] == list(aug.train_scale)
    back = Augmentation.from_json(values)
    assert back == aug and isinstance(back.train_scale, tuple)
    assert (back.scale_range, back.test_size) == (aug.scale_range, aug.test_size)


def test_from_json_refuses_unknown_fields():
    with pytest.raises(ValueError, match="unknown augmentation fields colour_shift"):
        Augmentation.from_json({"crop": 224, "train_scale": [256], "colour_shift": 0.1})
