"""Streamed data end to end: sources, the batch pipeline, training on a folder and on shards, serving a run."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import tfvgg
from tfvgg.data import pipeline, records, sources
from tfvgg.data.augment import Augmentation
from tfvgg.data.to_tfrecords import convert
from tfvgg.serving import load_run
from tfvgg.trainer import TrainConfig, train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": REPO}
CLASSES = ("cat", "dog", "fox")


def write_jpeg(path, seed, label, size=(40, 52)):
    """A small JPEG whose mean colour tells its class (so a few steps can learn something)."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 60, (*size, 3)).astype(np.uint8)
    image[..., label] += 150
    tf.io.write_file(str(path), tf.io.encode_jpeg(image, quality=90))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """DIR/<class>/*.jpg, 12 images per class."""
    root = tmp_path_factory.mktemp("folder")
    for label, name in enumerate(CLASSES):
        os.makedirs(root / name)
        for i in range(12):
            write_jpeg(root / name / f"{i:02d}.jpg", seed=label * 100 + i, label=label,
                       size=(40, 52) if i % 2 else (56, 36))
    return root


@pytest.fixture(scope="module")
def shards(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("shards") / "records"
    convert(str(folder), str(out), train_shards=3, validation_shards=1, validation_fraction=0.25, seed=0)
    return out


def first_batches(ds, n=2):
    return [(x.numpy(), y.numpy()) for x, y in ds.take(n)]


def test_folder_source_streams_decoded_images_with_the_same_split_every_time(folder):
    source = sources.open_source("folder", str(folder), seed=0, validation_fraction=0.25)
    again = sources.open_source("folder", str(folder), seed=0, validation_fraction=0.25)
    assert source.class_names == CLASSES and source.size("train") + source.size("validation") == 36
    assert source.index.splits == again.index.splits
    images = list(source.images("validation"))
    assert len(images) == source.size("validation") and all(x.dtype == tf.uint8 and x.shape[-1] == 3
                                                            for x, _ in images)
    assert {x.shape[:2] for x, _ in images} == {(40, 52), (56, 36)}   # sizes kept; the pipeline crops


def test_record_source_reads_what_the_converter_wrote(shards):
    source = sources.open_source("imagenet", str(shards))
    assert source.class_names == CLASSES
    assert source.size("train") + source.size("validation") == 36
    labels = [int(y) for _, y in source.images("train")]
    assert len(labels) == source.size("train") and set(labels) == {0, 1, 2}


def test_holding_out_records_is_fixed_and_matches_the_counts(shards, tmp_path):
    only_train = tmp_path / "only_train"
    os.makedirs(only_train)
    for path in records.list_shards(str(shards), "train"):
        os.symlink(path, only_train / os.path.basename(path))
    a = sources.RecordSource(str(only_train), validation_fraction=0.3, seed=4)
    b = sources.RecordSource(str(only_train), validation_fraction=0.3, seed=4)
    held = [x.numpy().tobytes() for x, _ in a.images("validation")]
    kept = [x.numpy().tobytes() for x, _ in a.images("train")]
    assert len(held) == a.size("validation") > 0 and len(kept) == a.size("train") > 0
    assert not set(held) & set(kept) and len(held) + len(kept) == 27
    assert held == [x.numpy().tobytes() for x, _ in b.images("validation")]


def test_training_batches_replay_from_the_seed_and_evaluation_is_fixed(shards):
    source = sources.open_source("imagenet", str(shards))
    prep = pipeline.Preprocessing(32, 3, Augmentation(32, (256, 512)), "rgb_mean")
    one = first_batches(pipeline.batches(source, "train", 4, prep, shuffle_seed=7))
    two = first_batches(pipeline.batches(source, "train", 4, prep, shuffle_seed=7))
    other = first_batches(pipeline.batches(source, "train", 4, prep, shuffle_seed=8))
    assert one[0][0].shape == (4, 32, 32, 3) and one[0][0].dtype == np.float32
    for (x1, y1), (x2, y2) in zip(one, two):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(one[0][0], other[0][0])
    resumed = first_batches(pipeline.batches(source, "train", 4, prep, shuffle_seed=7, skip_batches=1), 1)
    np.testing.assert_array_equal(resumed[0][0], one[1][0])
    eval_a = first_batches(pipeline.batches(source, "validation", 4, prep), 1)
    eval_b = first_batches(pipeline.batches(source, "validation", 4, prep), 1)
    np.testing.assert_array_equal(eval_a[0][0], eval_b[0][0])
    # RGB mean subtracted: pixel values straddle zero around the 0..255 range's middle
    assert eval_a[0][0].min() < 0 < eval_a[0][0].max() < 255 - 103


def small_run(model_dir, dataset, data_dir, **overrides):
    values = dict(model="lenet", dataset=dataset, data_dir=str(data_dir), image_size=28, batch_size=6, epochs=2,
                  learning_rate=1e-3, model_dir=str(model_dir), deterministic=False, log_every=100,
                  validation_fraction=0.25, train_scale="256,320")
    values.update(overrides)
    return TrainConfig(**values)


@pytest.fixture(scope="module")
def trained_run(shards, tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("run") / "shards_run"
    lines = []
    final = train(small_run(model_dir, "imagenet", shards), print_fn=lines.append)
    return model_dir, final, lines


def test_training_on_shards_keeps_validation_best_and_what_serving_needs(trained_run):
    model_dir, final, lines = trained_run
    assert np.isfinite(final["validation_loss"]) and np.isnan(final["test_loss"])   # no test shards
    assert any("scale jitter" in l or "S in" in l or "augment" in l.lower() for l in lines[:3]), lines[:3]
    with open(model_dir / "serving.json") as f:
        info = json.load(f)
    # LeNet takes grey images: photographs are turned grey and scaled to [0, 1], not mean-subtracted
    assert info["class_names"] == list(CLASSES) and info["preprocessing"]["pixels"] == "unit"
    assert info["preprocessing"]["channels"] == 1
    assert info["preprocessing"]["augmentation"] is not None
    assert tf.train.latest_checkpoint(str(model_dir / "best")) is not None
    run = load_run(str(model_dir))
    assert run.class_names == CLASSES and run.prep.image_size == 28 and "best" in run.checkpoint


def test_classify_export_and_evaluate_take_a_run_directory(trained_run, folder, tmp_path):
    model_dir, _, _ = trained_run
    image = str(folder / "dog" / "03.jpg")
    classified = subprocess.run([sys.executable, "-m", "tfvgg.classify", f"--model_dir={model_dir}", "--top=3",
                                 image], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert classified.returncode == 0, classified.stderr
    assert sum(name in classified.stdout for name in CLASSES) == 3   # the run's own class names
    out = tmp_path / "saved"
    exported = subprocess.run([sys.executable, "-m", "tfvgg.export", f"--model_dir={model_dir}", f"--out={out}"],
                              cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert exported.returncode == 0, exported.stderr
    served = tf.saved_model.load(str(out)).signatures["serving_default"]
    pixels = tf.io.decode_jpeg(tf.io.read_file(image))
    outputs = served(images=pixels[None])
    run = load_run(str(model_dir))
    expected = run.probabilities(run.load_image(image)[None])
    np.testing.assert_allclose(outputs["probabilities"].numpy(), expected.numpy(), rtol=1e-4, atol=1e-6)
    assert outputs["top_k_labels"].numpy()[0][0].decode() in CLASSES
    result_path = tmp_path / "eval.json"
    evaluated = subprocess.run([sys.executable, "-m", "tfvgg.evaluate", f"--model_dir={model_dir}",
                                f"--output_json={result_path}", "--crops=10"], cwd=REPO, env=ENV,
                               capture_output=True, text=True, timeout=300)
    assert evaluated.returncode == 0, evaluated.stderr
    with open(result_path) as f:
        result = json.load(f)
    assert result["split"] == "validation" and result["crops"] == 10 and result["images"] == 9
    assert np.array(result["confusion_matrix"]).sum() == 9 and 0 <= result["accuracy"] <= 1


def test_a_corrupt_image_is_named_or_skipped_and_counted(folder, tmp_path):
    broken = tmp_path / "broken"   # train/ and validation/ folders; one training image cut short
    for split in ("train", "validation"):
        os.makedirs(broken / split / "zebra")
        for name in CLASSES:
            os.symlink(folder / name, broken / split / name)
    for i in range(4):
        write_jpeg(broken / "train" / "zebra" / f"{i}.jpg", seed=900 + i, label=0)
    write_jpeg(broken / "validation" / "zebra" / "0.jpg", seed=999, label=0)
    with open(broken / "train" / "zebra" / "0.jpg", "rb") as f:
        head = f.read()
    with open(broken / "train" / "zebra" / "0.jpg", "wb") as f:
        f.write(head[:150])
    with pytest.raises(ValueError, match=r"train data: .*zebra/0\.jpg: not a decodable image"):
        train(small_run(tmp_path / "run", "folder", broken, epochs=1), print_fn=lambda *_: None)
    lines = []
    final = train(small_run(tmp_path / "run2", "folder", broken, epochs=1, skip_bad_images=True),
                  print_fn=lines.append)
    assert np.isfinite(final["train_loss"]) and any("skipped 1 undecodable image" in l for l in lines), lines


def test_non_finite_images_are_refused_only_when_asked(tmp_path):
    p = tfvgg.ParamStore(seed=0)
    images = np.zeros([3, 28, 28, 1], np.float32)
    images[1] = np.nan
    predictions = tfvgg.inference_op(images, p, 1.0, "lenet")[0]
    assert predictions.shape == (3,)   # max-pooling hides NaN: an ordinary-looking answer
    with pytest.raises(ValueError, match=r"NaN or infinite .*: 1$"):
        tfvgg.inference_op(images, p, 1.0, "lenet", check_finite=True)
    graph = tf.function(lambda x: tfvgg.inference_op(x, p, 1.0, "lenet", check_finite=True)[0])
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or infinite"):
        graph(tf.constant(images))


def run_module(module, *args, timeout=300):
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=ENV, capture_output=True, text=True,
                          timeout=timeout)


def test_benchmark_feeds_tfvgg_from_shards_beside_synthetic_images(shards, tmp_path):
    out = tmp_path / "bench.json"
    result = run_module("benchmarks.vgg16", "--batch_size=2", "--image_size=32", "--num_batches=2",
                        "--num_warmup_batches=1", "--conv_algorithm=direct", f"--data_dir={shards}",
                        f"--output_json={out}")
    assert result.returncode == 0, result.stderr
    assert "Input pipeline alone" in result.stdout and "input-bound" in result.stdout
    data = json.loads(out.read_text())
    assert data["input"]["pipeline_images_per_sec"] > 0 and data["input"]["train_images"] == 27
    assert data["input"]["pipeline_without_augmentation_images_per_sec"] > 0
    for pass_name in ("forward", "forward_backward"):
        synthetic = data["compare"]["synthetic"][pass_name]
        fed = data["input"]["passes"][pass_name]["fed_vs_synthetic"]
        assert fed == pytest.approx(data[pass_name]["images_per_sec"] / synthetic["images_per_sec"])
        assert isinstance(data["input"]["passes"][pass_name]["input_bound"], bool)
    missing = run_module("benchmarks.vgg16", f"--data_dir={tmp_path / 'nowhere'}")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert "nowhere" in missing.stderr.strip().splitlines()[-1]
