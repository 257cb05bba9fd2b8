"""Preprocessing against Keras' preprocess_input, image files, ImageNet labels."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import tfvgg


def test_caffe_preprocessing_equals_keras_vgg16(rng):
    pixels = rng.uniform(0, 255, size=(2, 5, 6, 3)).astype(np.float32)
    expected = keras.applications.vgg16.preprocess_input(pixels.copy())
    np.testing.assert_allclose(tfvgg.preprocess(pixels, "caffe").numpy(), expected, rtol=1e-6, atol=1e-4)


def test_rgb_mean_and_nchw(rng):
    pixels = rng.uniform(0, 255, size=(1, 4, 4, 3)).astype(np.float32)
    rgb = tfvgg.preprocess(pixels, "rgb_mean").numpy()
    np.testing.assert_allclose(rgb, pixels - np.array([123.68, 116.779, 103.939], np.float32), rtol=1e-6)
    nchw = tfvgg.preprocess(np.transpose(pixels, (0, 3, 1, 2)), "caffe", data_format="NCHW").numpy()
    np.testing.assert_allclose(np.transpose(nchw, (0, 2, 3, 1)), tfvgg.preprocess(pixels, "caffe").numpy(), rtol=1e-6)
    assert tfvgg.preprocess(tf.constant(pixels.astype(np.uint8)), "none").dtype == tf.float32


def test_preprocess_errors():
    with pytest.raises(ValueError, match="preprocessing must be one of caffe, rgb_mean, none"):
        tfvgg.preprocess(np.zeros((1, 2, 2, 3)), "torch")
    with pytest.raises(ValueError, match="3 colour channels"):
        tfvgg.preprocess(np.zeros((1, 2, 2, 4)))


@pytest.mark.parametrize("encoder,suffix", [(tf.io.encode_png, "png"), (tf.io.encode_jpeg, "jpg")])
def test_load_image_scales_the_short_side_and_crops_the_centre(tmp_path, encoder, suffix):
    # 300x400 image: left half red, right half blue; a green 40x40 square in the middle.
    image = np.zeros((300, 400, 3), np.uint8)
    image[:, :200, 0] = 255
    image[:, 200:, 2] = 255
    image[130:170, 180:220] = (0, 255, 0)
    path = str(tmp_path / f"test.{suffix}")
    tf.io.write_file(path, encoder(image))
    out = tfvgg.load_image(path, size=224, resize_to=256).numpy()
    assert out.shape == (224, 224, 3) and out.dtype == np.float32
    assert 0 <= out.min() and out.max() <= 255
    # short side 300 -> 256 (scale 0.853), long side 400 -> 341; crop keeps x in [58, 282) of 341
    assert out[112, 112, 1] > 200                        # the green square sits at the centre
    assert out[10, 10, 0] > 200 and out[10, 10, 2] < 50  # red on the left
    assert out[10, 213, 2] > 200 and out[10, 213, 0] < 50  # blue on the right


@pytest.mark.parametrize("height,width,size,resize_to", [(300, 400, 224, 256), (457, 301, 64, 96), (90, 90, 32, 32)])
def test_load_image_equals_resize_and_centre_crop_by_hand(tmp_path, rng, height, width, size, resize_to):
    image = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    path = str(tmp_path / "noise.png")   # lossless: the decoded pixels are the array's
    tf.io.write_file(path, tf.io.encode_png(image))
    scale = resize_to / min(height, width)
    new_h, new_w = max(size, round(height * scale)), max(size, round(width * scale))
    resized = tf.image.resize(image.astype(np.float32), (new_h, new_w), method="bilinear", antialias=True).numpy()
    top, left = (new_h - size) // 2, (new_w - size) // 2
    expected = np.clip(resized[top:top + size, left:left + size], 0.0, 255.0)
    np.testing.assert_array_equal(tfvgg.load_image(path, size=size, resize_to=resize_to).numpy(), expected)


def test_load_image_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="image not found"):
        tfvgg.load_image(str(tmp_path / "absent.jpg"))
    (tmp_path / "fake.jpg").write_text("this is not a JPEG")
    with pytest.raises(ValueError, match="fake.jpg: not a decodable image"):
        tfvgg.load_image(str(tmp_path / "fake.jpg"))


def test_class_names_are_the_keras_order():
    names = tfvgg.class_names()
    assert len(names) == 1000
    assert (names[0], names[1], names[281], names[999]) == ("tench", "goldfish", "tabby", "toilet_tissue")


def test_decode_predictions():
    probs = np.full((2, 1000), 1e-4, np.float32)
    probs[0, [281, 285, 7]] = [0.5, 0.3, 0.1]
    probs[1, 999] = 0.9
    top = tfvgg.decode_predictions(probs, top=3)
    assert [(i, n) for i, n, _ in top[0]] == [(281, "tabby"), (285, "Egyptian_cat"), (7, "cock")]
    assert top[1][0][:2] == (999, "toilet_tissue") and top[1][0][2] == pytest.approx(0.9)
    with pytest.raises(ValueError, match="10 classes but there are 1000 names"):
        tfvgg.decode_predictions(np.ones((1, 10)))
