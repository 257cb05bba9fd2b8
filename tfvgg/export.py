"""Export a network with its weights: a SavedModel that plain TensorFlow serves, or an ONNX file.

    python -m tfvgg.export --model=D --weights=vgg16_weights_tf_dim_ordering_tf_kernels.h5 --out=vgg16_saved
    python -m tfvgg.export --format=onnx --model=D --weights=... --out=vgg16.onnx
    python -m tfvgg.export --model_dir=runs/flowers --out=flowers_saved   # a tfvgg.train run, its class names

Signatures (``tf.saved_model.load(DIR).signatures[...]``):
  serving_default  images: uint8 ``[N, H, W, 3]`` RGB
  serving_float    images: float32 ``[N, H, W, 3]`` RGB in [0, 255]
Both resize to the network's image size (a run: as it evaluated, e.g. shorter side to Q and the centre
crop), apply its preprocessing, refuse images with NaN or infinite values, and return
``probabilities`` ``[N, C]``, ``top_k_indices`` ``[N, k]``, ``top_k_probabilities`` and,
when class names are known, ``top_k_labels``. Loading needs TensorFlow only.

The ONNX file (``tfvgg.onnx_export``) is the bare network for ONNX Runtime or OpenVINO: ``images`` float32
``[N, C, H, W]`` (``--layout=NHWC``: ``[N, H, W, C]``), already preprocessed, -> ``logits`` and ``probabilities``.
"""
import os
import shutil

from absl import flags
import tensorflow as tf

from tfvgg import cli, configs, onnx_export, serving
from tfvgg.cli import fail
from tfvgg.images import class_names as imagenet_class_names, preprocess
from tfvgg.network import check_finite_images, inference_op
from tfvgg.params import ParamStore
from tfvgg.weights import load_weights


class Classifier(tf.Module):
    """Images in, probabilities and top-k classes out, over a loaded ``ParamStore``."""

    def __init__(self, p, config, num_classes, prepare, class_names=None, top_k=5):
        """``prepare``: float32 RGB ``[N, H, W, 3]`` in [0, 255] -> the network's input ``[N, S, S, C]``."""
        super().__init__(name="tfvgg_classifier")
        self.params = p
        self.config = configs.get_network(config).name
        self.num_classes = int(num_classes)
        self.prepare = prepare
        self.top_k = min(int(top_k), self.num_classes)
        if class_names is not None and len(class_names) != self.num_classes:
            raise ValueError(f"{len(class_names)} class names for {self.num_classes} classes")
        self.class_names = None if class_names is None else tf.constant(list(class_names))

    def classify(self, images):
        """``[N, H, W, 3]`` RGB (uint8, or float in [0, 255]) -> dict of outputs."""
        x = check_finite_images(tf.cast(images, tf.float32))
        _, probabilities, _ = inference_op(self.prepare(x), self.params, 1.0, self.config, self.num_classes)
        top = tf.math.top_k(probabilities, k=self.top_k)
        outputs = {"probabilities": probabilities, "top_k_indices": top.indices, "top_k_probabilities": top.values}
        if self.class_names is not None:
            outputs["top_k_labels"] = tf.gather(self.class_names, top.indices)
        return outputs


def resize_and_preprocess(image_size, preprocessing="caffe"):
    """The ``prepare`` of published weights: resize to ``image_size``, then ``images.preprocess``."""
    def prepare(images):
        return preprocess(tf.image.resize(images, (image_size, image_size)), preprocessing)
    return prepare


def export_saved_model(p, out_dir, config="D", num_classes=None, image_size=None, preprocessing="caffe",
                       class_names=None, top_k=5, prepare=None):
    """Write a SavedModel of ``config`` with ``p``'s weights to ``out_dir`` (which must not exist yet).

    ``prepare`` (see ``Classifier``) defaults to ``resize_and_preprocess(image_size, preprocessing)``.
    Written to a temporary directory beside ``out_dir`` and renamed at the end,
    so ``out_dir`` is either complete or absent.
    """
    net = configs.get_network(config)
    image_size = image_size or net.input_shape[0]
    if prepare is None and net.input_shape[2] != 3:
        raise ValueError(f"{net.name} takes {net.input_shape[2]}-channel images; export serves RGB images only")
    if os.path.exists(out_dir):
        raise FileExistsError(f"{out_dir} already exists; choose a new --out")
    if len(p) == 0:
        inference_op(tf.zeros([1, image_size, image_size, 3]), p, 1.0, net.name, num_classes)
    num_classes = num_classes or int(p.params[-1].shape[0])
    if class_names is None and num_classes == 1000:
        class_names = imagenet_class_names()
    prepare = prepare or resize_and_preprocess(image_size, preprocessing)
    module = Classifier(p, net.name, num_classes, prepare, class_names, top_k)
    serve_uint8 = tf.function(module.classify, input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8,
                                                                              name="images")])
    serve_float = tf.function(module.classify, input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32,
                                                                              name="images")])
    tmp_dir = f"{out_dir.rstrip(os.sep)}.tmp-{os.getpid()}"
    try:
        tf.saved_model.save(module, tmp_dir, signatures={"serving_default": serve_uint8,
                                                         "serving_float": serve_float})
        os.replace(tmp_dir, out_dir)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return out_dir


def export_onnx(p, out_path, config="D", image_size=None, layout="NCHW"):
    """Write ``config`` with ``p``'s weights as an ONNX file at ``out_path`` (which must not exist yet), atomically."""
    if os.path.exists(out_path):
        raise FileExistsError(f"{out_path} already exists; choose a new --out")
    return onnx_export.save_onnx(onnx_export.to_onnx(p, config, image_size=image_size, layout=layout), out_path)


def define_flags():
    cli.MODEL.define("model", "D")
    cli.WEIGHTS.define("weights", None)
    cli.FlagSpec("path", "A tfvgg.train run directory instead of --weights: its best weights, class names and "
                         "preprocessing.").define("model_dir", None)
    cli.FlagSpec("enum", "saved_model (a directory TensorFlow serves) or onnx (one file for ONNX Runtime and "
                         "OpenVINO; needs pip install -e '.[peers]').", ("saved_model", "onnx")).define(
        "format", "saved_model")
    cli.FlagSpec("path", "What to create (must not exist): the SavedModel directory or the .onnx file.").define(
        "out", None, required=True)
    cli.IMAGE_SIZE.define("image_size", None)
    cli.PREPROCESSING_MODE.define("preprocessing", "caffe")
    cli.FlagSpec("integer", "SavedModel: classes returned per image.", lower=1).define("top_k", 5)
    cli.FlagSpec("enum", "ONNX: layout of the input images.", onnx_export.LAYOUTS).define("layout", "NCHW")


def export_run(model_dir, out_dir, top_k=5):
    """A SavedModel of a ``tfvgg.train`` run: its best weights, class names and evaluation preprocessing."""
    run = serving.load_run(model_dir)
    size, channels = run.prep.image_size, run.prep.channels
    prepare = lambda images: tf.map_fn(run.prep.eval_input, images,  # noqa: E731 - one image at a time
                                       fn_output_signature=tf.TensorSpec([size, size, channels], tf.float32))
    return export_saved_model(run.params, out_dir, run.model, run.num_classes, size, class_names=run.class_names,
                              top_k=top_k, prepare=prepare), run


def main(argv):
    cli.no_positional_arguments(argv)
    f = flags.FLAGS
    if bool(f.weights) == bool(f.model_dir):
        fail("give --weights (a weight file) or --model_dir (a tfvgg.train run), one of them", argv)
    if f.model_dir:
        if f.format != "saved_model":
            fail("--model_dir exports a SavedModel only (--format=saved_model)", argv)
        try:
            _, trained = export_run(f.model_dir, f.out, f.top_k)
        except (ValueError, FileNotFoundError, FileExistsError) as e:
            fail(e, argv)
        print(f"Exported {f.model_dir} ({trained.model}, {trained.num_classes} classes, {trained.checkpoint}) "
              f"to {f.out}")
        return
    net = configs.get_network(f.model)
    size = f.image_size or net.input_shape[0]
    p = ParamStore()
    try:
        load_weights(p, f.weights, net.name, input_shape=(size, size, net.input_shape[2] if f.format == "onnx" else 3))
        if f.format == "onnx":
            export_onnx(p, f.out, net.name, image_size=size, layout=f.layout)
        else:
            export_saved_model(p, f.out, net.name, image_size=size, preprocessing=f.preprocessing, top_k=f.top_k)
    except (ValueError, FileNotFoundError, FileExistsError, ImportError) as e:
        fail(e, argv)
    print(f"Exported {net.description} ({p.count_params():,} parameters) to {f.out}")
    if f.format == "onnx":
        print(f"  input images: float32 {'[N, C, H, W]' if f.layout == 'NCHW' else '[N, H, W, C]'} at {size}x{size}, "
              f"preprocessed as for tfvgg; outputs: logits, probabilities")
    else:
        print("  signatures: serving_default (uint8 images), serving_float (float32 images in [0, 255])")


def run():
    """``tfvgg-export``: the console script."""
    cli.run(main, define_flags)


if __name__ == "__main__":
    run()
