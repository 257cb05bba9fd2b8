"""The network as an ONNX graph, for the inference engines (ONNX Runtime, OpenVINO).

Built from the configuration table and a ``ParamStore`` with the ``onnx`` package's own helpers, one node per
primitive: Conv (+ Relu), MaxPool, LRN, Flatten, Gemm (+ Relu); dropout is the identity at inference and has
no node. Four translations are worth knowing:
  * layout: ONNX convolutions are NCHW, so kernels go from tfvgg's ``[kh, kw, C_in, C_out]`` to
    ``[C_out, C_in, kh, kw]``; the input is ``images`` ``[N, C, H, W]`` (``layout="NHWC"``: ``[N, H, W, C]``,
    transposed by the graph's first node);
  * flatten: tfvgg flattens in H, W, C order, ONNX in C, H, W order, so the rows of the first fully connected
    kernel are permuted once here, instead of transposing every batch;
  * padding: TensorFlow's SAME puts the odd pixel at the end; the pads are written out per layer from the known
    image size (``pad_total = max((out - 1) * stride + kernel - in, 0)``, the smaller half first);
  * LRN: ONNX divides ``alpha`` by the window size (Caffe's convention), tf.nn.lrn does not.
Outputs: ``logits`` ``[N, classes]`` and ``probabilities`` (softmax). The weights are float32.

``onnx`` is an optional dependency: ``pip install -e '.[peers]'``.
"""
import importlib

import numpy as np

from tfvgg import configs, ops
from tfvgg.summary import output_size, summary
from tfvgg.util import atomic_open, list_mismatches

OPSET = 17
LAYOUTS = ("NCHW", "NHWC")
INSTALL_HINT = "pip install -e '.[peers]'"


def require(module):
    """``import module``, or ImportError saying how to install it (the engines are an optional extra)."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"{module} is not installed ({INSTALL_HINT} installs onnx, onnxruntime and openvino)") \
            from e


def to_onnx(p, config="D", num_classes=None, image_size=None, layout="NCHW"):
    """An ``onnx.ModelProto`` of ``config`` with ``p``'s weights, for images of ``image_size`` x ``image_size``.

    ``p`` must hold the network's variables (built, or loaded with ``load_weights``); ``num_classes`` and
    ``image_size`` default to what its classifier and ``images`` were built for. The batch is dynamic (``N``).
    """
    onnx = require("onnx")
    from onnx import TensorProto, helper
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}; got {layout!r}")
    net = configs.get_network(config)
    built = p.built_shapes.get("images")
    image_size = image_size or (built[0] if built else net.input_shape[0])
    classifier = p.get(f"{net.classifier_name}/w")
    num_classes = num_classes or (int(classifier.shape[1]) if classifier is not None else net.num_classes)
    channels = built[2] if built else net.input_shape[2]
    table = summary(net, (image_size, image_size, channels), num_classes, print_fn=None)
    _check_store(p, table, net)

    graph = _GraphBuilder()
    x = "images"
    shape = ["N", channels, image_size, image_size] if layout == "NCHW" else ["N", image_size, image_size, channels]
    if layout == "NHWC":
        x = graph.node("Transpose", [x], "images_nchw", perm=[0, 3, 1, 2])
    hwc = (image_size, image_size, channels)
    for layer, row in zip(net.with_classes(num_classes), table.rows):
        x = _layer_nodes(graph, layer, x, hwc, p)
        if len(row.output_shape) == 3:
            hwc = row.output_shape
    graph.nodes[-1].output[0] = "logits"
    graph.node("Softmax", ["logits"], "probabilities", axis=1)
    model = helper.make_model(
        helper.make_graph(graph.nodes, f"tfvgg_{net.name}",
                          [helper.make_tensor_value_info("images", TensorProto.FLOAT, shape)],
                          [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", num_classes])
                           for n in ("logits", "probabilities")],
                          graph.initializers),
        opset_imports=[helper.make_opsetid("", OPSET)], producer_name="tfvgg", doc_string=net.description)
    onnx.checker.check_model(model)
    return model


def save_onnx(model, path):
    """Write ``model`` to ``path`` atomically (the whole file or none)."""
    with atomic_open(path, "wb") as f:
        f.write(model.SerializeToString())
    return path


def same_pads(size, kernel, stride):
    """(before, after) padding of TensorFlow's SAME along one axis of ``size`` pixels."""
    total = max((output_size(size, kernel, stride, "SAME") - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class _GraphBuilder:
    """Nodes and initializers in order; each node's output named after its layer."""

    def __init__(self):
        self.nodes, self.initializers = [], []

    def node(self, op_type, inputs, output, **attributes):
        from onnx import helper
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=output, **attributes))
        return output

    def constant(self, name, array):
        from onnx import numpy_helper
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array, np.float32), name))
        return name


def _layer_nodes(graph, layer, x, hwc, p):
    """The nodes of one layer spec on input ``x`` (NCHW, ``hwc`` its H, W, C); returns the output's name."""
    if isinstance(layer, configs.Conv):
        w = np.transpose(p[f"{layer.name}/w"].numpy(), (3, 2, 0, 1))   # [kh, kw, in, out] -> [out, in, kh, kw]
        inputs = [x, graph.constant(f"{layer.name}/w", w), graph.constant(f"{layer.name}/b", p[f"{layer.name}/b"])]
        y = graph.node("Conv", inputs, layer.name, kernel_shape=[layer.kernel] * 2, strides=[layer.stride] * 2,
                       pads=_pads(hwc, layer.kernel, layer.stride, layer.padding))
        return graph.node("Relu", [y], f"{layer.name}/relu")
    if isinstance(layer, configs.Pool):
        return graph.node("MaxPool", [x], layer.name, kernel_shape=[layer.kernel] * 2, strides=[layer.stride] * 2,
                          pads=_pads(hwc, layer.kernel, layer.stride, layer.padding))
    if isinstance(layer, configs.LRN):
        return graph.node("LRN", [x], layer.name, size=ops.LRN_N, alpha=ops.LRN_ALPHA * ops.LRN_N,
                          beta=ops.LRN_BETA, bias=ops.LRN_K)
    if isinstance(layer, configs.Flatten):
        return graph.node("Flatten", [x], layer.name, axis=1)
    if isinstance(layer, configs.FC):
        w = p[f"{layer.name}/w"].numpy()
        if graph.nodes[-1].op_type == "Flatten":   # rows in H, W, C order -> C, H, W order, as ONNX flattens NCHW
            h, w_, c = hwc
            w = w.reshape(h, w_, c, -1).transpose(2, 0, 1, 3).reshape(h * w_ * c, -1)
        inputs = [x, graph.constant(f"{layer.name}/w", w), graph.constant(f"{layer.name}/b", p[f"{layer.name}/b"])]
        y = graph.node("Gemm", inputs, layer.name)
        return graph.node("Relu", [y], f"{layer.name}/relu") if layer.relu else y
    if isinstance(layer, configs.Dropout):
        return x
    raise TypeError(f"no ONNX translation of layer spec {layer!r}")


def _pads(hwc, kernel, stride, padding):
    """ONNX ``pads`` ``[top, left, bottom, right]`` reproducing TensorFlow's ``padding`` on an ``hwc`` input."""
    if padding == "VALID":
        return [0, 0, 0, 0]
    (top, bottom), (left, right) = same_pads(hwc[0], kernel, stride), same_pads(hwc[1], kernel, stride)
    return [top, left, bottom, right]


def _check_store(p, table, net):
    """ValueError unless ``p`` holds exactly the variables ``table`` expects, in their shapes."""
    if len(p) == 0:
        raise ValueError(f"the store has no variables; build {net.name} (inference_op) or load_weights first")
    found = {name: tuple(v.shape) for name, v in zip(p.names, p.params)}
    problems = list_mismatches(table.variable_shapes(), found, "the store has", f"{net.name} needs")
    if problems:
        raise ValueError(f"cannot export {net.name}: {'; '.join(problems)}")
