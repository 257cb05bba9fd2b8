"""Layer table of a network from its specs alone: output shapes, parameters, multiply-adds.

No variables and no forward pass: every number comes from the arithmetic below,
so each row can be checked by hand (conv1_1 of VGG-16: 3*3*3*64 + 64 = 1,792
parameters; 224*224 * 3*3*3*64 = 86,704,128 multiply-adds).
"""
from dataclasses import dataclass

from tfvgg import configs


@dataclass(frozen=True)
class LayerRow:
    name: str
    kind: str            # "conv3-64", "maxpool2/2", "fc-4096", ...
    output_shape: tuple  # (H, W, C) or (units,)
    params: int
    mult_adds: int       # multiply-accumulates per image
    kernel_shape: tuple = ()  # ``<name>/w``: (kh, kw, C_in, C_out) or (n_in, n_out); () without variables


@dataclass(frozen=True)
class Summary:
    network: str
    description: str
    input_shape: tuple
    num_classes: int
    rows: tuple

    @property
    def total_params(self):
        return sum(r.params for r in self.rows)

    @property
    def total_mult_adds(self):
        """Multiply-adds per image (FLOPs = 2x this)."""
        return sum(r.mult_adds for r in self.rows)

    def variable_shapes(self):
        """``{"conv1_1/w": (3, 3, 3, 64), "conv1_1/b": (64,), ...}`` in layer order, as a ParamStore names them."""
        shapes = {}
        for r in self.rows:
            if r.kernel_shape:
                shapes[f"{r.name}/w"] = r.kernel_shape
                shapes[f"{r.name}/b"] = r.kernel_shape[-1:]
        return shapes

    def table(self):
        header = (f"{self.description or self.network}: input {_fmt(self.input_shape)}, "
                  f"{self.num_classes} classes")
        lines = [header, f"{'layer':<10} {'type':<12} {'output':>14} {'params':>13} {'mult-adds':>15}"]
        lines.append("-" * len(lines[1]))
        for r in self.rows:
            lines.append(f"{r.name:<10} {r.kind:<12} {_fmt(r.output_shape):>14} {r.params:>13,} {r.mult_adds:>15,}")
        lines.append("-" * len(lines[1]))
        lines.append(f"{'total':<10} {'':<12} {'':>14} {self.total_params:>13,} {self.total_mult_adds:>15,}")
        lines.append(f"{self.total_params / 1e6:.2f} M parameters, {self.total_mult_adds / 1e9:.2f} G multiply-adds "
                     f"per image")
        return "\n".join(lines)

    def __str__(self):
        return self.table()


def output_size(size, kernel, stride, padding):
    """Output length of a conv or pool along one axis: SAME ceil(n/s), VALID ceil((n-k+1)/s)."""
    if padding == "SAME":
        return -(-size // stride)
    return -(-(size - kernel + 1) // stride)


def summary(config, input_shape=None, num_classes=None, print_fn=print):
    """Per-layer table of ``config`` for images of ``input_shape`` = (H, W, C).

    Returns a ``Summary`` (``.rows``, ``.total_params``, ``.total_mult_adds``)
    and prints its table with ``print_fn`` (None prints nothing).
    """
    net = configs.get_network(config)
    input_shape = tuple(net.input_shape if input_shape is None else input_shape)
    if len(input_shape) != 3 or not all(isinstance(d, int) and d > 0 for d in input_shape):
        raise ValueError(f"input_shape must be (H, W, C) positive ints; got {input_shape!r}")
    layers = net.with_classes(num_classes)
    shape = input_shape
    rows = []
    for layer in layers:
        params = mult_adds = 0
        kernel_shape = ()
        if isinstance(layer, (configs.Conv, configs.Pool)):
            h, w, c = shape
            if layer.padding == "VALID" and (h < layer.kernel or w < layer.kernel):
                raise ValueError(f"{net.name}/{layer.name}: a {layer.kernel}x{layer.kernel} VALID window does "
                                 f"not fit {h}x{w}; input {_fmt(input_shape)} is too small")
            h, w = (output_size(n, layer.kernel, layer.stride, layer.padding) for n in (h, w))
            if isinstance(layer, configs.Conv):
                k, c_out = layer.kernel, layer.channels
                params = k * k * c * c_out + c_out
                kernel_shape = (k, k, c, c_out)
                mult_adds = h * w * k * k * c * c_out
                kind, shape = f"conv{k}-{c_out}", (h, w, c_out)
            else:
                kind, shape = f"maxpool{layer.kernel}/{layer.stride}", (h, w, c)
            if layer.stride > 1 and isinstance(layer, configs.Conv):
                kind += f"/{layer.stride}"
        elif isinstance(layer, configs.LRN):
            kind = "LRN"
        elif isinstance(layer, configs.Flatten):
            kind, shape = "flatten", (shape[0] * shape[1] * shape[2],)
        elif isinstance(layer, configs.FC):
            (n_in,) = shape
            params = n_in * layer.units + layer.units
            kernel_shape = (n_in, layer.units)
            mult_adds = n_in * layer.units
            kind, shape = f"fc-{layer.units}", (layer.units,)
        elif isinstance(layer, configs.Dropout):
            kind = "dropout"
        else:
            raise TypeError(f"{net.name}: unknown layer spec {layer!r}")
        rows.append(LayerRow(layer.name, kind, shape, params, mult_adds, kernel_shape))
    result = Summary(net.name, net.description, input_shape, rows[-1].output_shape[0], tuple(rows))
    if print_fn is not None:
        print_fn(result.table())
    return result


def _fmt(shape):
    return "x".join(str(d) for d in shape)
