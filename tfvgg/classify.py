"""Classify image files with published weights, or with a run ``tfvgg.train`` left:

    python -m tfvgg.classify --weights=vgg16_weights_tf_dim_ordering_tf_kernels.h5 cat.jpg dog.png
    python -m tfvgg.classify --model_dir=runs/flowers rose.jpg

Prints the top classes with their probabilities for each image; a run
directory brings its own class names and preprocessing (``tfvgg.serving``).
"""
from absl import flags
import tensorflow as tf

from tfvgg import cli, configs, serving
from tfvgg.cli import fail
from tfvgg.images import class_names, decode_predictions, load_image, preprocess
from tfvgg.network import inference_op
from tfvgg.params import ParamStore
from tfvgg.weights import load_weights


def define_flags():
    cli.MODEL.define("model", "D")
    cli.WEIGHTS.define("weights", None)
    cli.FlagSpec("path", "A tfvgg.train run directory instead of --weights: its best weights, class names and "
                         "preprocessing.").define("model_dir", None)
    cli.IMAGE_SIZE.define("image_size", None)
    cli.PREPROCESSING_MODE.define("preprocessing", "caffe")
    cli.FlagSpec("integer", "Classes printed per image.", lower=1).define("top", 5)


def classify_files(p, paths, config, image_size, preprocessing="caffe", top=5):
    """``[(path, [(index, name, probability), ...]), ...]`` for each image file."""
    images = tf.stack([load_image(path, size=image_size, resize_to=max(256, image_size)) for path in paths])
    _, probabilities, _ = inference_op(preprocess(images, preprocessing), p, 1.0, config)
    num_classes = int(probabilities.shape[1])
    names = class_names() if num_classes == 1000 else [f"class {i}" for i in range(num_classes)]
    return list(zip(paths, decode_predictions(probabilities, top, names)))


def classify_with_run(run, paths, top=5):
    """``classify_files``' result for a ``serving.RunModel``."""
    probabilities = run.probabilities(tf.stack([run.load_image(path) for path in paths]))
    return list(zip(paths, decode_predictions(probabilities, top, run.class_names)))


def main(argv):
    f = flags.FLAGS
    paths = argv[1:]
    if bool(f.weights) == bool(f.model_dir):
        fail("give --weights (a weight file) or --model_dir (a tfvgg.train run), one of them: random weights "
             "classify nothing (BUILD.md says where to get the published ones)", argv)
    if not paths:
        fail("no image files given: python -m tfvgg.classify --weights=FILE image.jpg ...", argv)
    try:
        if f.model_dir:
            results = classify_with_run(serving.load_run(f.model_dir), paths, f.top)
        else:
            net = configs.get_network(f.model)
            size = f.image_size or net.input_shape[0]
            p = ParamStore()
            load_weights(p, f.weights, net.name, input_shape=(size, size, net.input_shape[2]))
            results = classify_files(p, paths, net.name, size, f.preprocessing, f.top)
    except (ValueError, FileNotFoundError) as e:
        fail(e, argv)
    for path, predictions in results:
        print(path)
        for rank, (index, name, probability) in enumerate(predictions, start=1):
            print(f"  {rank}. {name} ({index}) {probability:.4f}")


def run():
    """``tfvgg-classify``: the console script."""
    cli.run(main, define_flags)


if __name__ == "__main__":
    run()
