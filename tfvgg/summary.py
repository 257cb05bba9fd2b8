"""Layer table of a network from its specs alone: output shapes, parameters, multiply-adds.

No variables and no forward pass: every number comes from the arithmetic below,
so each row can be checked by hand (conv1_1 of VGG-16: 3*3*3*64 + 64 = 1,792
parameters; 224*224 * 3*3*3*64 = 86,704,128 multiply-adds).
"""
from dataclasses import dataclass

from tfvgg import configs
from tfvgg.util import format_shape


@dataclass(frozen=True)
class LayerRow:
    name: str
    kind: str            # "conv3-64", "maxpool2/2", "fc-4096", ...
    output_shape: tuple  # (H, W, C) or (units,)
    params: int
    mult_adds: int       # multiply-accumulates per image
    kernel_shape: tuple = ()  # ``<name>/w``: (kh, kw, C_in, C_out) or (n_in, n_out); () without variables
    receptive_field: int = 0  # input pixels one output unit sees along each axis; 0 = the whole image
    params_formula: str = ""     # "3*3*3*64 + 64"
    mult_adds_formula: str = ""  # "224*224 * 3*3*3*64"
    shape_formula: str = ""      # "ceil(224/2) = 112"


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
        header = (f"{self.description or self.network}: input {format_shape(self.input_shape)}, "
                  f"{self.num_classes} classes")
        lines = [header, f"{'layer':<10} {'type':<12} {'output':>14} {'params':>13} {'mult-adds':>15}"]
        lines.append("-" * len(lines[1]))
        for r in self.rows:
            lines.append(f"{r.name:<10} {r.kind:<12} {format_shape(r.output_shape):>14} {r.params:>13,} "
                         f"{r.mult_adds:>15,}")
        lines.append("-" * len(lines[1]))
        lines.append(f"{'total':<10} {'':<12} {'':>14} {self.total_params:>13,} {self.total_mult_adds:>15,}")
        lines.append(f"{self.total_params / 1e6:.2f} M parameters, {self.total_mult_adds / 1e9:.2f} G multiply-adds "
                     f"per image")
        return "\n".join(lines)

    def explain(self):
        """The table with its arithmetic: every number as the product that gives it, and receptive fields."""
        lines = [f"{self.description or self.network}: input {format_shape(self.input_shape)}, "
                 f"{self.num_classes} classes",
                 "receptive field: input pixels (per axis) that one output unit depends on"]
        for r in self.rows:
            field = f"{r.receptive_field}x{r.receptive_field}" if r.receptive_field else "whole image"
            lines.append(f"{r.name} ({r.kind}): output {format_shape(r.output_shape)}"
                         + (f" [{r.shape_formula}]" if r.shape_formula else "") + f"; receptive field {field}")
            if r.params:
                lines.append(f"    parameters {r.params_formula} = {r.params:,}")
                lines.append(f"    multiply-adds {r.mult_adds_formula} = {r.mult_adds:,}")
        lines.append(f"total: {self.total_params:,} parameters, {self.total_mult_adds:,} multiply-adds per image")
        return "\n".join(lines)

    def __str__(self):
        return self.table()


def output_size(size, kernel, stride, padding):
    """Output length of a conv or pool along one axis: SAME ceil(n/s), VALID ceil((n-k+1)/s)."""
    if padding == "SAME":
        return -(-size // stride)
    return -(-(size - kernel + 1) // stride)


def summary(config, input_shape=None, num_classes=None, print_fn=print, explain=False):
    """Per-layer table of ``config`` for images of ``input_shape`` = (H, W, C).

    Returns a ``Summary`` (``.rows``, ``.total_params``, ``.total_mult_adds``)
    and prints its table with ``print_fn`` (None prints nothing); with
    ``explain=True`` the printout shows each number's arithmetic and each
    layer's receptive field (two stacked 3x3 convolutions see 5x5, three see 7x7).
    """
    net = configs.get_network(config)
    input_shape = tuple(net.input_shape if input_shape is None else input_shape)
    if len(input_shape) != 3 or not all(isinstance(d, int) and d > 0 for d in input_shape):
        raise ValueError(f"input_shape must be (H, W, C) positive ints; got {input_shape!r}")
    shape = input_shape
    spatial = input_shape          # the last (H, W, C) before flatten, for the fc6 formula
    field, jump = 1, 1             # receptive field and the input distance between neighbouring units
    rows = []
    for layer in net.with_classes(num_classes):
        row = {"params": 0, "mult_adds": 0}
        if isinstance(layer, (configs.Conv, configs.Pool)):
            row.update(_window_row(net.name, layer, shape, input_shape))
            field, jump = field + (layer.kernel - 1) * jump, jump * layer.stride
            shape = spatial = row["output_shape"]
            row["receptive_field"] = field
        elif isinstance(layer, configs.LRN):
            row.update(kind="LRN", output_shape=shape, receptive_field=field)
        elif isinstance(layer, configs.Flatten):
            shape = (shape[0] * shape[1] * shape[2],)
            row.update(kind="flatten", output_shape=shape, shape_formula=f"{spatial[0]}*{spatial[1]}*{spatial[2]}")
        elif isinstance(layer, configs.FC):
            (n_in,) = shape
            n_in_expr = "*".join(map(str, spatial)) if rows and rows[-1].kind == "flatten" else str(n_in)
            row.update(kind=f"fc-{layer.units}", output_shape=(layer.units,), params=n_in * layer.units + layer.units,
                       kernel_shape=(n_in, layer.units), mult_adds=n_in * layer.units,
                       params_formula=f"{n_in_expr}*{layer.units} + {layer.units}",
                       mult_adds_formula=f"{n_in_expr}*{layer.units}")
            shape = row["output_shape"]
        elif isinstance(layer, configs.Dropout):
            row.update(kind="dropout", output_shape=shape)
        else:
            raise TypeError(f"{net.name}: unknown layer spec {layer!r}")
        rows.append(LayerRow(name=layer.name, **row))
    result = Summary(net.name, net.description, input_shape, rows[-1].output_shape[0], tuple(rows))
    if print_fn is not None:
        print_fn(result.explain() if explain else result.table())
    return result


def _window_row(net_name, layer, shape, input_shape):
    """A convolution's or max-pool's row fields on input ``shape`` = (H, W, C): output shape, parameters,
    multiply-adds and their formulas."""
    h, w, c = shape
    k, s = layer.kernel, layer.stride
    if layer.padding == "VALID" and (h < k or w < k):
        raise ValueError(f"{net_name}/{layer.name}: a {k}x{k} VALID window does not fit {h}x{w}; "
                         f"input {format_shape(input_shape)} is too small")
    out_h, out_w = (output_size(n, k, s, layer.padding) for n in (h, w))
    row = {}
    if s > 1:
        row["shape_formula"] = (f"ceil({h}/{s}) = {out_h}" if layer.padding == "SAME"
                                else f"ceil(({h}-{k}+1)/{s}) = {out_h}")
    if isinstance(layer, configs.Pool):
        return {**row, "kind": f"maxpool{k}/{s}", "output_shape": (out_h, out_w, c)}
    c_out = layer.channels
    return {**row, "kind": f"conv{k}-{c_out}" + (f"/{s}" if s > 1 else ""), "output_shape": (out_h, out_w, c_out),
            "params": k * k * c * c_out + c_out, "kernel_shape": (k, k, c, c_out),
            "mult_adds": out_h * out_w * k * k * c * c_out, "params_formula": f"{k}*{k}*{c}*{c_out} + {c_out}",
            "mult_adds_formula": f"{out_h}*{out_w} * {k}*{k}*{c}*{c_out}"}
