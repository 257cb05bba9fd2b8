"""Memory pre-flight: what one pass of a network needs, what this process may still use, and a check between them.

    s = tfvgg.summary("D", print_fn=None)
    estimate_bytes(s, 32, "forward_backward", tf.float32).total      # bytes, about 3.8 GiB
    check_fits(s, 100000, ["forward_backward"], tf.float32)         # InsufficientMemory: one line

The estimate counts, in bytes: the TensorFlow runtime (``RUNTIME_BYTES``); the
float32 parameters (per replica); for forward-backward and train their gradients;
for train the optimizer's slots; a copy of the weights in the compute dtype under
mixed precision; activations (forward: the two largest consecutive tensors, as
earlier ones are freed; forward-backward and train: every layer's output, kept
for the backward pass, plus the gradient of the largest one); Winograd's tiles
(one chunk's tiles; forward: the filters kept transformed; training: the
copies of each Winograd layer's input and output its chunks keep for the
backward pass, whose tiles are recomputed); the caller's ``extras``; and creating
the variables, whose transient copies can outweigh a small batch's pass.

Calibration (AMD EPYC, 2 cores, 32 MiB L3, 23 GiB RAM, TensorFlow 2.21 tensorflow-cpu): each run in a process of
its own, ``/usr/bin/time -v python -m benchmarks.vgg16 --batch_size=B --passes=P --num_batches=1
--num_warmup_batches=1 --conv_algorithm=A``, "Maximum resident set size" against ``estimate_bytes`` plus the
benchmark's own extras (its 4096^2 matmul probe, 192 MiB; see ``benchmarks.cnn``):

    pass               algorithm  batch   measured MiB   estimate MiB
    forward            direct         8          2,111          2,124   (+0.6%; creating the variables dominates)
    forward            direct        16          2,128          2,124   (-0.2%)
    forward-backward   direct         8          2,216          2,431   (+9.7%)
    forward-backward   direct        16          2,725          2,994   (+9.9%)
    forward-backward   winograd4      8          3,749          3,373   (-10%; tiles recomputed, b581360)

One more image of VGG-16 forward-backward (direct) costs 64 MiB measured and 70 MiB estimated. Issue 13's
direct run on another CPU (batch 32 forward-backward, no probe): 3,766 MiB measured, 3,929 estimated.
"""
import dataclasses
import math
import os

import tensorflow as tf

from tfvgg import winograd

PASSES = ("forward", "forward_backward", "train")
PASS_TITLES = {"forward": "forward", "forward_backward": "forward-backward", "train": "train"}
PARAMETER_BYTES = 4   # variables are float32 in every precision

# TensorFlow itself: peak RSS of `import tensorflow as tf; tf.add(tf.ones([2]), 1.0).numpy()` read with
# resource.getrusage (ru_maxrss): 590-615 MiB over four runs on the calibration machine (TF 2.21, CPU), importing
# tfvgg and benchmarks.cnn as well included; rounded up.
RUNTIME_BYTES = 620 * 2 ** 20

# Creating a variable (stateless_uniform, then scaled and shifted) holds about two more tensors of its size at
# once: creating VGG-16's variables (fc6/w: 392 MiB) peaked at 1,929 MiB of RSS, 672 MiB over the 1,257 MiB
# held once they existed.
INITIALIZATION_COPIES = 2

PROC_MEMINFO = "/proc/meminfo"
PROC_CGROUP = "/proc/self/cgroup"
CGROUP_ROOT = "/sys/fs/cgroup"
NO_LIMIT = 2 ** 60   # cgroup v1 writes "no limit" as the largest page-aligned int64


class InsufficientMemory(ValueError):
    """A batch whose estimated peak memory exceeds what this process may still use (one-line message)."""


@dataclasses.dataclass(frozen=True)
class Estimate:
    """Peak bytes of one pass, in parts.

    ``fixed``: held all run (runtime, parameters); ``pass_fixed``: held during the pass whatever the batch
    (gradients, optimizer slots); ``per_image``: bytes per image the pass holds at once (of the whole batch,
    or of one micro-batch of ``micro_batch_size``); ``per_batch_image``: bytes per image of the whole batch
    held besides when it runs in micro-batches; ``initialization``: the transient of creating the variables,
    before any pass, so the peak counts it or the pass, not both. Each part is a tuple of (label, bytes).
    """
    pass_name: str
    batch_size: int
    fixed: tuple
    pass_fixed: tuple
    per_image: tuple
    initialization: int
    micro_batch_size: int = 0
    per_batch_image: tuple = ()

    @property
    def images_at_once(self):
        """Images whose activations are alive together: the batch, or one micro-batch."""
        return min(self.batch_size, self.micro_batch_size or self.batch_size)

    @property
    def working_set(self):
        """Bytes the pass adds to the fixed parts at this batch."""
        return (_sum(self.pass_fixed) + self.images_at_once * _sum(self.per_image)
                + self.batch_size * _sum(self.per_batch_image))

    @property
    def total(self):
        """Estimated peak bytes."""
        return _sum(self.fixed) + max(self.initialization, self.working_set)

    def parts(self):
        """[(label, bytes)] that add up to ``total``."""
        if self.initialization > self.working_set:
            return [*self.fixed, ("creating the variables", self.initialization)]
        return [*self.fixed, *self.pass_fixed, *((label, b * self.images_at_once) for label, b in self.per_image),
                *((label, b * self.batch_size) for label, b in self.per_batch_image)]


def _sum(parts):
    return sum(b for _, b in parts)


def _conv_layers(summary):
    """(row, input shape (H, W, C)) of every convolution row (a 4-d kernel)."""
    shape = summary.input_shape
    for row in summary.rows:
        if len(row.kernel_shape) == 4:
            yield row, shape
        shape = row.output_shape


def winograd_layers(summary, conv_algorithm, dtype, pass_name):
    """[(row, input shape, m)] of the convolutions ``conv_algorithm`` runs by Winograd F(m x m, 3 x 3).

    "auto" counts the fixed rule's picks (``winograd.choose``); a tuned run may pick others.
    """
    layers = []
    for row, (h, w, c_in) in _conv_layers(summary):
        kh, kw, _, c_out = row.kernel_shape
        stride_one_same = row.output_shape[:2] == (h, w)   # SAME at stride 1 keeps H x W; VALID shrinks it
        if conv_algorithm == "direct" or not winograd.supports(kh, kw, 1, 1, "SAME") or not stride_one_same:
            continue
        algorithm = conv_algorithm
        if algorithm == "auto":
            algorithm = winograd.choose(kh, kw, 1, 1, "SAME", h, w, c_in, c_out, dtype,
                                        pretransformed=pass_name == "forward")
        if algorithm != "direct":
            layers.append((row, (h, w, c_in), winograd.ALGORITHMS[algorithm]))
    return layers


def _tile_elements(h, w, channels, m):
    """Elements of one image's (m+2)^2 transformed tiles over ``channels``."""
    return (m + 2) ** 2 * math.ceil(h / m) * math.ceil(w / m) * channels


def _winograd_parts(summary, pass_name, dtype, conv_algorithm):
    """(fixed parts, per-image parts) of Winograd's buffers, in bytes."""
    itemsize = tf.as_dtype(dtype).size
    layers = winograd_layers(summary, conv_algorithm, dtype, pass_name)
    if not layers:
        return [], []
    # A layer runs in chunks of about CHUNK_BYTES of tiles V and products M (at least one image); the backward
    # pass recomputes a chunk's tiles.
    one_image = max(_tile_elements(h, w, c_in + row.kernel_shape[3], m) * itemsize
                    for row, (h, w, c_in), m in layers)
    fixed = [("Winograd tile buffer", max(winograd.CHUNK_BYTES, one_image))]
    if pass_name == "forward":   # inference copies keep every layer's filters transformed, (m+2)^2 / 9 of a kernel
        filters = sum((m + 2) ** 2 * c_in * row.kernel_shape[3] for row, (_, _, c_in), m in layers)
        return fixed + [("transformed filters", filters * itemsize)], []
    # Kept for the backward pass: each chunk's input and output (copies of the layer's whole input and output);
    # in it, the chunks of the largest layer's output gradient and of its input gradient before they are joined.
    copies = sum(math.prod(shape) + math.prod(row.output_shape) for row, shape, _ in layers)
    gradients = 2 * max(math.prod(row.output_shape) for row, _, _ in layers)
    return fixed, [("Winograd chunk copies", copies * itemsize), ("Winograd gradient chunks", gradients * itemsize)]


def _activation_elements(summary, pass_name):
    """(elements per image the pass keeps, elements of the largest tensor's gradient)."""
    sizes = [math.prod(summary.input_shape)]
    sizes += [math.prod(r.output_shape) for r in summary.rows if r.kind != "flatten"]   # flatten is a view
    if pass_name == "forward":
        return max(a + b for a, b in zip(sizes, sizes[1:])), 0
    return sum(sizes), max(sizes)


def estimate_bytes(summary, batch_size, pass_name, dtype, conv_algorithm="direct", *, optimizer_slots=1,
                   replicas=1, extras=None, micro_batch_size=0):
    """An ``Estimate`` of the peak bytes one ``pass_name`` ("forward", "forward_backward", "train") needs.

    ``summary``: ``tfvgg.summary(...)``; ``batch_size``: images in this process; ``dtype``: the compute dtype;
    ``optimizer_slots``: slot variables per parameter (SGD with momentum 1, Adam 2); ``replicas``: copies of the
    variables in this process; ``extras``: ``{label: bytes}`` the caller holds besides (kept all run);
    ``micro_batch_size``: gradients computed in micro-batches of this many images (``steps.summed_gradients``;
    0: the whole batch at once; the forward pass is not split).
    """
    if pass_name not in PASSES:
        raise ValueError(f"pass_name must be one of {', '.join(PASSES)}; got {pass_name!r}")
    itemsize = tf.as_dtype(dtype).size
    weights = summary.total_params * PARAMETER_BYTES * replicas
    fixed = [("runtime", RUNTIME_BYTES), ("parameters", weights)]
    if tf.as_dtype(dtype) != tf.float32:
        fixed.append((f"{tf.as_dtype(dtype).name} weights", summary.total_params * itemsize * replicas))
    fixed += list((extras or {}).items())
    pass_fixed = []
    if pass_name != "forward":
        pass_fixed.append(("gradients", weights))
    if pass_name == "train" and optimizer_slots:
        pass_fixed.append(("optimizer slots", weights * optimizer_slots))
    kept, gradient = _activation_elements(summary, pass_name)
    per_image = [("activations", kept * itemsize)]
    if gradient:
        per_image.append(("largest gradient", gradient * itemsize))
    tile_fixed, tile_per_image = _winograd_parts(summary, pass_name, dtype, conv_algorithm)
    largest_variable = max((math.prod(r.kernel_shape) for r in summary.rows if r.kernel_shape), default=0)
    micro = micro_batch_size if pass_name != "forward" and 0 < micro_batch_size < batch_size else 0
    per_batch_image = []
    if micro:   # the gradients' running sums; the batch's images twice (as fed, and stacked by micro-batch)
        pass_fixed.append(("gradient sums", weights))
        per_batch_image.append(("images", 2 * math.prod(summary.input_shape) * PARAMETER_BYTES))
    return Estimate(pass_name, batch_size, tuple(fixed + tile_fixed), tuple(pass_fixed),
                    tuple(per_image + tile_per_image),
                    INITIALIZATION_COPIES * largest_variable * PARAMETER_BYTES, micro, tuple(per_batch_image))


def largest_batch(summary, pass_name, dtype, available, conv_algorithm="direct", *, micro_batch_size=0,
                  **options):
    """The largest batch whose estimate fits in ``available`` bytes (0 if not even one image); the estimate is
    linear in the batch up to ``micro_batch_size``, and beyond it. ``options``: as ``estimate_bytes``'s."""
    e = estimate_bytes(summary, 1, pass_name, dtype, conv_algorithm, **options)
    room = available - _sum(e.fixed)
    if room < e.initialization:
        return 0
    whole = max(0, int((room - _sum(e.pass_fixed)) // _sum(e.per_image)))
    if not micro_batch_size or pass_name == "forward" or whole <= micro_batch_size:
        return whole
    e = estimate_bytes(summary, micro_batch_size + 1, pass_name, dtype, conv_algorithm,
                       micro_batch_size=micro_batch_size, **options)
    left = room - _sum(e.pass_fixed) - micro_batch_size * _sum(e.per_image)
    return max(micro_batch_size, int(left // _sum(e.per_batch_image)))


def largest_micro_batch(summary, batch_size, pass_name, dtype, available, conv_algorithm="direct", **options):
    """The largest micro-batch whose estimate at ``batch_size`` fits in ``available`` bytes, below the batch
    (0: none; the forward pass is not split). ``options``: as ``estimate_bytes``'s."""
    if pass_name == "forward" or batch_size < 2:
        return 0
    options.pop("micro_batch_size", None)
    e = estimate_bytes(summary, batch_size, pass_name, dtype, conv_algorithm, micro_batch_size=1, **options)
    if available < _sum(e.fixed) + e.initialization:
        return 0
    left = available - _sum(e.fixed) - _sum(e.pass_fixed) - batch_size * _sum(e.per_batch_image)
    return max(0, min(batch_size - 1, int(left // _sum(e.per_image))))


def format_bytes(n):
    """``n`` bytes as "1,234.5 GiB", or MiB below 1 GiB."""
    return f"{n / 2 ** 30:,.1f} GiB" if n >= 2 ** 30 else f"{n / 2 ** 20:,.0f} MiB"


def check_fits(summary, batch_size, pass_names, dtype, conv_algorithm="direct", available=None, **options):
    """Raise ``InsufficientMemory`` (one line) if a pass of ``pass_names`` at ``batch_size`` will not fit.

    ``available``: bytes (default ``available_bytes()``; nothing is checked where that is unknown).
    ``options``: as ``estimate_bytes``'s. Returns the largest pass's ``Estimate``.
    """
    estimates = [estimate_bytes(summary, batch_size, p, dtype, conv_algorithm, **options) for p in pass_names]
    worst = max(estimates, key=lambda e: e.total)
    available = available_bytes() if available is None else available
    if available is None or worst.total <= available:
        return worst
    fits = min(largest_batch(summary, p, dtype, available, conv_algorithm, **options) for p in pass_names)
    parts = ", ".join(f"{label} {format_bytes(b)}" for label, b in worst.parts() if b)
    network = summary.description.split(",")[0] or summary.network
    split = [p for p in pass_names if p != "forward"]   # a forward pass too large is not split
    whole_fit = all(e.total <= available for e in estimates if e.pass_name == "forward")
    micro = min((largest_micro_batch(summary, batch_size, p, dtype, available, conv_algorithm, **options)
                 for p in split), default=0) if whole_fit else 0
    raise InsufficientMemory(
        f"{network} {PASS_TITLES[worst.pass_name]} at batch {batch_size} needs about {format_bytes(worst.total)} "
        f"(estimate: {parts}); {format_bytes(available)} available; "
        + (f"the largest batch that fits is about {fits:,}" if fits else "even batch 1 does not fit")
        + (f"; this batch fits in micro-batches of up to about {micro:,} images" if micro else ""))


def _read_int(path):
    """The integer a small file holds; None if it is missing, unreadable, "max" or not a number."""
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return int(f.read(64).strip())
    except (OSError, ValueError):
        return None


def _meminfo_available():
    """MemAvailable of /proc/meminfo in bytes, or None."""
    try:
        with open(PROC_MEMINFO, encoding="ascii", errors="replace") as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 2 and fields[0] == "MemAvailable:":
                    return int(fields[1]) * (1024 if fields[2:] == ["kB"] else 1)
    except (OSError, ValueError):
        return None
    return None


def _cgroup_dirs(controller):
    """This process's cgroup directory and its ancestors' under ``CGROUP_ROOT``: v2 for controller "",
    v1's ``memory`` hierarchy for "memory". Just the hierarchy's root where /proc/self/cgroup says nothing."""
    base = os.path.join(CGROUP_ROOT, controller) if controller else CGROUP_ROOT
    relative = ""
    try:
        with open(PROC_CGROUP, encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.strip().split(":", 2)
                if len(parts) == 3 and (parts[1] == controller if not controller
                                        else controller in parts[1].split(",")):
                    relative = parts[2].strip("/")
                    break
    except OSError:
        pass
    dirs = [os.path.join(base, relative)] if relative else []
    while relative:
        relative = os.path.dirname(relative)
        dirs.append(os.path.join(base, relative))
    return dirs or [base]


def _cgroup_room():
    """Bytes left under the tightest cgroup memory limit (v2 memory.max, v1 memory.limit_in_bytes), or None."""
    rooms = []
    for controller, limit_file, usage_file in (("", "memory.max", "memory.current"),
                                               ("memory", "memory.limit_in_bytes", "memory.usage_in_bytes")):
        for directory in _cgroup_dirs(controller):
            limit = _read_int(os.path.join(directory, limit_file))
            usage = _read_int(os.path.join(directory, usage_file))
            if limit is not None and usage is not None and 0 < limit < NO_LIMIT:
                rooms.append(max(0, limit - usage))
    return min(rooms) if rooms else None


def available_bytes():
    """Bytes this process may still allocate: the smaller of MemAvailable and the cgroup's room; None if
    neither is known (not Linux)."""
    known = [b for b in (_meminfo_available(), _cgroup_room()) if b is not None]
    return min(known) if known else None
