"""Export a network with its weights: a SavedModel that plain TensorFlow serves, or an ONNX file.

    python -m tfvgg.export --model=D --weights=vgg16_weights_tf_dim_ordering_tf_kernels.h5 --out=vgg16_saved
    python -m tfvgg.export --format=onnx --model=D --weights=... --out=vgg16.onnx

Signatures (``tf.saved_model.load(DIR).signatures[...]``):
  serving_default  images: uint8 ``[N, H, W, 3]`` RGB
  serving_float    images: float32 ``[N, H, W, 3]`` RGB in [0, 255]
Both resize to the network's image size, apply its preprocessing and return
``probabilities`` ``[N, C]``, ``top_k_indices`` ``[N, k]``, ``top_k_probabilities`` and,
when class names are known, ``top_k_labels``. Loading needs TensorFlow only.

The ONNX file (``tfvgg.onnx_export``) is the bare network for ONNX Runtime or OpenVINO: ``images`` float32
``[N, C, H, W]`` (``--layout=NHWC``: ``[N, H, W, C]``), already preprocessed, -> ``logits`` and ``probabilities``.
"""
import os
import shutil

from absl import flags
import tensorflow as tf

from tfvgg import cli, configs, onnx_export
from tfvgg.cli import fail
from tfvgg.images import class_names as imagenet_class_names, preprocess
from tfvgg.network import inference_op
from tfvgg.params import ParamStore
from tfvgg.weights import load_weights


class Classifier(tf.Module):
    """Images in, probabilities and top-k classes out, over a loaded ``ParamStore``."""

    def __init__(self, p, config, num_classes, image_size, preprocessing="caffe", class_names=None, top_k=5):
        super().__init__(name="tfvgg_classifier")
        self.params = p
        self.config = configs.get_network(config).name
        self.num_classes = int(num_classes)
        self.image_size = int(image_size)
        self.preprocessing = preprocessing
        self.top_k = min(int(top_k), self.num_classes)
        if class_names is not None and len(class_names) != self.num_classes:
            raise ValueError(f"{len(class_names)} class names for {self.num_classes} classes")
        self.class_names = None if class_names is None else tf.constant(list(class_names))

    def classify(self, images):
        """``[N, H, W, 3]`` RGB (uint8, or float in [0, 255]) -> dict of outputs."""
        x = tf.image.resize(tf.cast(images, tf.float32), (self.image_size, self.image_size))
        _, probabilities, _ = inference_op(preprocess(x, self.preprocessing), self.params, 1.0, self.config,
                                           self.num_classes)
        top = tf.math.top_k(probabilities, k=self.top_k)
        outputs = {"probabilities": probabilities, "top_k_indices": top.indices, "top_k_probabilities": top.values}
        if self.class_names is not None:
            outputs["top_k_labels"] = tf.gather(self.class_names, top.indices)
        return outputs


def export_saved_model(p, out_dir, config="D", num_classes=None, image_size=None, preprocessing="caffe",
                       class_names=None, top_k=5):
    """Write a SavedModel of ``config`` with ``p``'s weights to ``out_dir`` (which must not exist yet).

    Written to a temporary directory beside ``out_dir`` and renamed at the end,
    so ``out_dir`` is either complete or absent.
    """
    net = configs.get_network(config)
    image_size = image_size or net.input_shape[0]
    channels = net.input_shape[2]
    if channels != 3:
        raise ValueError(f"{net.name} takes {channels}-channel images; export serves RGB images only")
    if os.path.exists(out_dir):
        raise FileExistsError(f"{out_dir} already exists; choose a new --out")
    if len(p) == 0:
        inference_op(tf.zeros([1, image_size, image_size, 3]), p, 1.0, net.name, num_classes)
    num_classes = num_classes or int(p.params[-1].shape[0])
    if class_names is None and num_classes == 1000:
        class_names = imagenet_class_names()
    module = Classifier(p, net.name, num_classes, image_size, preprocessing, class_names, top_k)
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
    cli.WEIGHTS.define("weights", None, required=True)
    cli.FlagSpec("enum", "saved_model (a directory TensorFlow serves) or onnx (one file for ONNX Runtime and "
                         "OpenVINO; needs pip install -e '.[peers]').", ("saved_model", "onnx")).define(
        "format", "saved_model")
    cli.FlagSpec("path", "What to create (must not exist): the SavedModel directory or the .onnx file.").define(
        "out", None, required=True)
    cli.IMAGE_SIZE.define("image_size", None)
    cli.PREPROCESSING_MODE.define("preprocessing", "caffe")
    cli.FlagSpec("integer", "SavedModel: classes returned per image.", lower=1).define("top_k", 5)
    cli.FlagSpec("enum", "ONNX: layout of the input images.", onnx_export.LAYOUTS).define("layout", "NCHW")


def main(argv):
    cli.no_positional_arguments(argv)
    f = flags.FLAGS
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
