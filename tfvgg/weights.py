"""Weight files into and out of a ``ParamStore``, read with real parsers (h5py, numpy without pickle).

Formats, detected from the file's first bytes:
  * Keras HDF5: the ``keras.applications`` files
    (``vgg16_weights_tf_dim_ordering_tf_kernels[_notop].h5``, VGG-19 alike) and any
    ``model.save_weights("x.h5")`` of Keras 2, and Keras 3 ``x.weights.h5`` files.
    Layer names map ``block{b}_conv{i}`` -> ``conv{b}_{i}``, ``fc1/fc2/predictions`` -> ``fc6/fc7/fc8``.
  * ``.npz`` in the classic layout (``conv1_1_W``, ``conv1_1_b``, ..., ``fc8_W``, ``fc8_b``)
    or in tfvgg's own (``conv1_1/w``, ``conv1_1/b``, ...).
Kernels are HWIO / [n_in, n_out] and fc6 expects H, W, C flatten order in all of
them, as in tfvgg, so tensors load unchanged.
"""
import re
import zipfile

import numpy as np

from tfvgg import configs
from tfvgg.initializers import FromValues
from tfvgg.summary import summary
from tfvgg.util import atomic_open, list_mismatches

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_SIGNATURE = b"PK\x03\x04"
KERAS_DENSE_NAMES = {"fc1": "fc6", "fc2": "fc7", "predictions": "fc8"}


def keras_to_tfvgg_layer(name):
    """``block3_conv2`` -> ``conv3_2``; ``fc1`` -> ``fc6``; other names unchanged."""
    match = re.fullmatch(r"block(\d+)_conv(\d+)", name)
    if match:
        return f"conv{match.group(1)}_{match.group(2)}"
    return KERAS_DENSE_NAMES.get(name, name)


def read_weights(path):
    """``{"conv1_1/w": array, "conv1_1/b": array, ...}`` from any supported file."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except FileNotFoundError:
        raise FileNotFoundError(f"weights file not found: {path}") from None
    if head == HDF5_SIGNATURE:
        return read_keras_h5(path)
    if head[:4] == ZIP_SIGNATURE:
        return read_npz(path)
    raise ValueError(f"{path}: neither an HDF5 (.h5) nor an .npz weights file (it starts with {head!r})")


def read_keras_h5(path):
    """Kernel and bias of every layer with weights in a Keras 2 or Keras 3 HDF5 weights file."""
    try:
        import h5py
    except ImportError:
        raise ImportError("reading .h5 weights needs h5py: pip install h5py") from None
    try:
        with h5py.File(path, "r") as f:
            if "layer_names" in f.attrs:
                layers = _keras2_layers(f)
            elif "layers" in f:
                layers = _keras3_layers(f)
            else:
                raise ValueError(f"{path}: an HDF5 file, but not Keras weights (no 'layer_names' attribute "
                                 "and no 'layers' group)")
    except OSError as e:
        raise ValueError(f"{path}: not a readable HDF5 weights file ({e})") from None
    arrays = {}
    for keras_name, tensors in layers:
        if not tensors:
            continue
        if len(tensors) != 2:
            raise ValueError(f"{path}: layer {keras_name} has {len(tensors)} tensors; expected kernel and bias")
        layer = keras_to_tfvgg_layer(keras_name)
        arrays[f"{layer}/w"], arrays[f"{layer}/b"] = tensors
    return arrays


def _decode(name):
    return name.decode("utf8") if isinstance(name, bytes) else str(name)


def _keras2_layers(f):
    """Keras 2 / applications layout: attrs layer_names; each layer group lists its weight_names in order."""
    layers = []
    for layer_name in map(_decode, f.attrs["layer_names"]):
        group = f[layer_name]
        weight_names = [_decode(n) for n in group.attrs.get("weight_names", [])]
        layers.append((layer_name, [np.asarray(group[n]) for n in weight_names]))
    return layers


def _keras3_layers(f):
    """Keras 3 ``.weights.h5`` layout: layers/<object>/vars/{0,1}, the layer's name in the vars group's attrs."""
    layers = []
    for key, group in f["layers"].items():
        variables = group.get("vars")
        if variables is None:
            continue
        name = _decode(variables.attrs.get("name", key))
        layers.append((name, [np.asarray(variables[str(i)]) for i in range(len(variables))]))
    return layers


def read_npz(path):
    """An ``.npz`` in the classic (``conv1_1_W``) or tfvgg (``conv1_1/w``) layout; pickles are refused."""
    try:
        with np.load(path, allow_pickle=False) as data:
            raw = {key: data[key] for key in data.files}
    except (zipfile.BadZipFile, EOFError, OSError) as e:
        raise ValueError(f"{path}: not a readable .npz weights file ({e})") from None
    except ValueError as e:
        raise ValueError(f"{path}: holds Python objects ({e}); tfvgg loads plain arrays only") from None
    arrays = {}
    for key, value in raw.items():
        classic = re.fullmatch(r"(.+)_([Wb])", key)
        name = f"{classic.group(1)}/{classic.group(2).lower()}" if classic and "/" not in key else key
        arrays[name] = value
    return arrays


def save_npz(p, path, layout="tfvgg"):
    """Write the store to ``path`` (.npz) atomically; ``layout="classic"`` names tensors ``conv1_1_W``."""
    if layout not in ("tfvgg", "classic"):
        raise ValueError(f"layout must be 'tfvgg' or 'classic'; got {layout!r}")
    arrays = {}
    for name, variable in zip(p.names, p.params):
        key = name if layout == "tfvgg" else name.replace("/w", "_W").replace("/b", "_b")
        arrays[key] = variable.numpy()
    with atomic_open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def expected_shapes(config, arrays, input_shape=None, num_classes=None):
    """Variable shapes ``config`` needs for a file holding ``arrays``.

    Channels and class count are read from the file (first kernel, last bias)
    unless given; a file without the fully connected layers is a feature
    extractor (``include_top=False``).
    """
    net = configs.get_network(config)
    features = {l.name for l in net.feature_layers(1)}
    top = [l.name for l in net.layers if isinstance(l, configs.FC) and l.name not in features]
    include_top = any(f"{name}/w" in arrays for name in top)
    first = next(l.name for l in net.layers if isinstance(l, configs.Conv))
    h, w, c = net.input_shape if input_shape is None else input_shape
    if input_shape is None and f"{first}/w" in arrays and np.ndim(arrays[f"{first}/w"]) == 4:
        c = int(arrays[f"{first}/w"].shape[2])
    if num_classes is None and include_top and f"{top[-1]}/b" in arrays:
        num_classes = int(np.shape(arrays[f"{top[-1]}/b"])[0])
    shapes = summary(net, (h, w, c), num_classes, print_fn=None).variable_shapes()
    if not include_top:
        shapes = {n: s for n, s in shapes.items() if n.rsplit("/", 1)[0] not in top}
    return shapes


def check_shapes(expected, arrays, source):
    """ValueError listing every missing, extra and mis-shaped tensor; None if all match."""
    problems = list_mismatches(expected, {n: np.shape(a) for n, a in arrays.items()}, "file", "needed")
    if problems:
        raise ValueError(f"{source} does not fit: " + "; ".join(problems))


def load_weights(p, path, config="D", input_shape=None, num_classes=None):
    """Load a weight file into ``p``; all of it or nothing.

    An empty store gets its variables created from the file, shaped for
    ``config`` (image size ``input_shape`` (H, W, C), default the network's).
    A store that already has variables must match the file exactly.
    Returns the loaded variable names in layer order.
    """
    arrays = read_weights(path)
    if len(p):
        expected = {name: tuple(v.shape) for name, v in zip(p.names, p.params)}
        source = f"{path} (into a store of {len(p)} variables)"
    else:
        expected = expected_shapes(config, arrays, input_shape, num_classes)
        source = f"{path} (as configuration {configs.get_network(config).name})"
    check_shapes(expected, arrays, source)
    if len(p):
        for name in expected:
            p[name].assign(arrays[name].astype(np.float32))
    else:
        for name in expected:
            p.get_or_create(name, expected[name], FromValues(arrays[name].astype(np.float32)))
    return list(expected)
