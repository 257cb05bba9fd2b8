"""Op-level layers on ``tf.nn``: each is a few lines a reader can check by hand.

Conventions shared by every primitive:
  * ``input_op``: ``[N, H, W, C]`` for ``data_format="NHWC"`` (default) or
    ``[N, C, H, W]`` for ``"NCHW"`` (the faster layout on GPUs).
  * Compute dtype: the input's float dtype, or ``dtype`` if given (the input is
    cast to it). Variables stay float32 in the store and are cast at use, so
    ``bfloat16``/``float16`` runs are mixed precision with float32 weights.
  * ``p``: a ``ParamStore``; a layer's variables are ``"<name>/w"`` and
    ``"<name>/b"``.
"""
import functools
import zlib

import tensorflow as tf

from tfvgg import autotune, winograd
from tfvgg.initializers import Constant, GlorotUniform
from tfvgg.util import format_shape, spatial_dims

DATA_FORMATS = ("NHWC", "NCHW")
_LAYOUTS = {"NHWC": "[N, H, W, C]", "NCHW": "[N, C, H, W]", None: "[N, H, W, C]"}
PADDINGS = ("SAME", "VALID")
CONV_ALGORITHMS = ("direct", *winograd.ALGORITHMS, "auto")

# AlexNet (Krizhevsky et al., 2012), section 3.3: k=2, n=5, alpha=1e-4, beta=0.75.
# tf.nn.lrn sums over depth_radius channels on each side, so n=5 -> radius 2;
# its alpha multiplies the plain sum, as in the paper (Caffe divides by n).
LRN_K, LRN_N, LRN_ALPHA, LRN_BETA = 2.0, 5, 1e-4, 0.75


def conv_op(input_op, name, kh, kw, n_out, dh, dw, p, *, padding="SAME", data_format="NHWC",
            dtype=None, kernel_init=None, bias_init=0.0, algorithm="direct"):
    """Convolution + bias + ReLU.

    Variables: ``name/w`` ``[kh, kw, n_in, n_out]`` (Glorot uniform) and
    ``name/b`` ``[n_out]`` (``bias_init``, 0.0 as in the classic code).
    Returns ``[N, H', W', n_out]`` (NHWC) or ``[N, n_out, H', W']`` (NCHW), with
    H' = ceil(H / dh) for SAME padding and ceil((H - kh + 1) / dh) for VALID.
    ``algorithm``: "direct" (``tf.nn.conv2d``), "winograd2" / "winograd4" / "winograd6"
    (F(2x2,3x3) / F(4x4,3x3) / F(6x6,3x3), 3x3 stride-1 SAME only, see ``tfvgg.winograd``)
    or "auto" (per layer workload, the fastest measured on this machine: ``tfvgg.autotune``).
    """
    x = _compute_input(input_op, name, data_format, dtype)
    _check_choice(name, "padding", padding, PADDINGS)
    _check_choice(name, "algorithm", algorithm, CONV_ALGORITHMS)
    n_in = _channels(x, data_format)
    if padding == "VALID":
        _check_window_fits(name, x, data_format, kh, kw)
    existing = p.get(f"{name}/w")
    if existing is not None and existing.shape[2] != n_in:
        raise ValueError(
            f"{name} was created for {existing.shape[2]} input channels "
            f"(kernel {format_shape(existing.shape)}); got {n_in} (input {format_shape(x.shape[1:])} {data_format})"
        )
    kernel = p.get_or_create(f"{name}/w", (kh, kw, n_in, n_out), kernel_init or GlorotUniform())
    bias = p.get_or_create(f"{name}/b", (n_out,), Constant(bias_init))
    choice = _auto_choice(name, x, data_format, (kh, kw, dh, dw, padding), n_out, p) if algorithm == "auto" \
        else autotune.Choice(algorithm)
    algorithm = choice.algorithm
    if algorithm != "direct":
        if not winograd.supports(kh, kw, dh, dw, padding):
            raise ValueError(f"{name}: {algorithm} computes 3x3 stride-1 SAME convolutions only; this layer is "
                             f"{kh}x{kw} stride {dh}x{dw} {padding}")
        try:
            winograd.check_precision(algorithm, x.dtype)
        except ValueError as e:
            raise ValueError(f"{name}: {e}") from None
        transformed = p.transformed_filters(name, algorithm)   # kept by ParamStore.inference_copy, or None
        return winograd.conv_bias_relu(x, _cast(kernel, x.dtype), _cast(bias, x.dtype), algorithm, data_format,
                                       None if transformed is None else _cast(transformed, x.dtype), choice.chunk,
                                       choice.products)
    y = tf.nn.conv2d(x, _cast(kernel, x.dtype), _strides(dh, dw, data_format), padding,
                     data_format=data_format, name=name)
    y = tf.nn.bias_add(y, _cast(bias, x.dtype), data_format=data_format)
    return tf.nn.relu(y)


@tf.autograph.experimental.do_not_convert
def _auto_choice(name, x, data_format, window, n_out, p):
    """The ``autotune.Choice`` for ``algorithm="auto"``: measured (``tfvgg.autotune``) where tuning is on, else
    ``winograd.choose``'s rule. An inference copy of the store (``ParamStore.inference_copy``) tunes the forward
    pass from transformed filters; any other store the training pass (forward + backward)."""
    if not winograd.supports(*window):
        return autotune.Choice("direct")
    inference = p.for_inference
    h, w = spatial_dims(x, data_format)
    n_in = _channels(x, data_format)
    fallback = winograd.choose(*window, h, w, n_in, n_out, x.dtype,
                               inference and p.transformed_filters(name, "winograd4") is not None)
    workload = autotune.Workload(h, w, n_in, n_out, x.shape[0], x.dtype.name, data_format,
                                 "inference" if inference else "training")
    return autotune.choose(workload, fallback)


def fc_op(input_op, name, n_out, p, *, relu=True, dtype=None, kernel_init=None, bias_init=0.1):
    """Fully connected layer: ``relu(x @ w + b)``, or the logits ``x @ w + b`` with ``relu=False``.

    ``input_op``: ``[N, n_in]``. Variables ``name/w`` ``[n_in, n_out]`` (Glorot
    uniform) and ``name/b`` ``[n_out]`` (``bias_init``, 0.1 as in the classic
    code, which keeps ReLUs alive at the start). Returns ``[N, n_out]``.
    """
    x = _compute_input(input_op, name, None, dtype, rank=2)
    n_in = int(x.shape[-1])
    existing = p.get(f"{name}/w")
    if existing is not None and existing.shape[0] != n_in:
        raise ValueError(f"{name} was created for {existing.shape[0]} inputs; got {n_in}")
    kernel = p.get_or_create(f"{name}/w", (n_in, n_out), kernel_init or GlorotUniform())
    bias = p.get_or_create(f"{name}/b", (n_out,), Constant(bias_init))
    y = tf.nn.bias_add(tf.matmul(x, _cast(kernel, x.dtype)), _cast(bias, x.dtype), name=name)
    return tf.nn.relu(y) if relu else y


def mpool_op(input_op, name, kh, kw, dh, dw, *, padding="SAME", data_format="NHWC"):
    """Max pooling over kh x kw windows with stride dh x dw. No variables."""
    x = _compute_input(input_op, name, data_format, None)
    _check_choice(name, "padding", padding, PADDINGS)
    if padding == "VALID":
        _check_window_fits(name, x, data_format, kh, kw)
    return tf.nn.max_pool2d(x, (kh, kw), _strides(dh, dw, data_format), padding,
                            data_format=data_format, name=name)


def lrn_op(input_op, name, *, k=LRN_K, n=LRN_N, alpha=LRN_ALPHA, beta=LRN_BETA, data_format="NHWC"):
    """Local response normalization across channels (AlexNet; VGG's A-LRN).

    ``b = a / (k + alpha * sum of a^2 over n neighbouring channels) ** beta``.
    tf.nn.lrn normalizes the last axis, so NCHW input is transposed around it.
    Computed in float32 (the sum of squares overflows float16 easily).
    """
    x = _compute_input(input_op, name, data_format, None)
    if n % 2 != 1:
        raise ValueError(f"{name}: n must be odd (a window centred on each channel); got {n}")
    compute_dtype = x.dtype
    y = tf.cast(x, tf.float32)
    if data_format == "NCHW":
        y = tf.transpose(y, (0, 2, 3, 1))
    y = tf.nn.lrn(y, depth_radius=(n - 1) // 2, bias=k, alpha=alpha, beta=beta, name=name)
    if data_format == "NCHW":
        y = tf.transpose(y, (0, 3, 1, 2))
    return _cast(y, compute_dtype)


def dropout_op(input_op, name, keep_prob, *, seed=None):
    """Keep each unit with probability ``keep_prob`` (scaled by 1/keep_prob); 1.0 = identity.

    ``keep_prob``: a Python number in (0, 1], or a scalar tensor (checked at run time).
    ``seed``: None or an int (TensorFlow's stateful dropout), or a pair of ints /
    an int tensor of shape [2] for stateless dropout: the same pair always drops
    the same units (mixed with the layer name, so layers differ), which makes a
    training run repeatable step by step, also after a resume.
    """
    check_keep_prob(keep_prob)
    if isinstance(keep_prob, (int, float)):
        if keep_prob == 1.0:
            return input_op
        rate = 1.0 - float(keep_prob)
    else:
        rate = 1.0 - tf.cast(keep_prob, input_op.dtype)
    if seed is None or isinstance(seed, int):
        return tf.nn.dropout(input_op, rate=rate, seed=seed, name=name)
    layer_offset = tf.constant([0, zlib.crc32(name.encode()) & 0x7FFFFFFF], tf.int64)
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int64) + layer_offset
    return tf.nn.experimental.stateless_dropout(input_op, rate=rate, seed=seed, name=name)


def flatten_op(input_op, name="flatten", *, data_format="NHWC"):
    """``[N, H, W, C]`` -> ``[N, H*W*C]``, always in H, W, C order.

    NCHW input is transposed to NHWC first, so the fc6 weights mean the same in
    both layouts (and match weight files saved from NHWC frameworks).
    """
    x = _compute_input(input_op, name, data_format, None)
    if data_format == "NCHW":
        x = tf.transpose(x, (0, 2, 3, 1))
    return tf.reshape(x, (-1, x.shape[1:].num_elements()), name=name)


@functools.lru_cache(maxsize=None)
def nchw_supported(device="/CPU:0"):
    """Whether TensorFlow has NCHW convolution and pooling kernels on ``device``.

    GPUs have them; on a CPU only oneDNN does, and TensorFlow turns oneDNN on by
    default only on CPUs with AVX-512 VNNI/BF16 or AMX (``TF_ENABLE_ONEDNN_OPTS=1``
    turns it on elsewhere, e.g. on AVX2-only CPUs).
    """
    try:
        with tf.device(device), tf.init_scope():
            tf.nn.conv2d(tf.zeros([1, 1, 4, 4]), tf.zeros([3, 3, 1, 1]), 1, "SAME", data_format="NCHW")
            tf.nn.max_pool2d(tf.zeros([1, 1, 4, 4]), 2, 2, "SAME", data_format="NCHW")
        return True
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError, tf.errors.NotFoundError):
        return False


def check_keep_prob(keep_prob):
    """ValueError unless a Python ``keep_prob`` is in (0, 1]; tensors get a run-time assertion."""
    if isinstance(keep_prob, bool):
        raise TypeError(f"keep_prob must be a number in (0, 1]; got {keep_prob!r}")
    if isinstance(keep_prob, (int, float)):
        if not 0.0 < keep_prob <= 1.0:
            raise ValueError(f"keep_prob must be in (0, 1] (1.0 = no dropout); got {keep_prob}")
        return
    keep_prob = tf.convert_to_tensor(keep_prob)
    tf.debugging.assert_greater(keep_prob, tf.zeros_like(keep_prob), "keep_prob must be > 0")
    tf.debugging.assert_less_equal(keep_prob, tf.ones_like(keep_prob), "keep_prob must be <= 1")


def _compute_input(input_op, name, data_format, dtype, rank=4):
    """Check rank, dtype and layout of a layer's input; cast to ``dtype`` if given."""
    x = tf.convert_to_tensor(input_op)
    if data_format is not None:
        _check_choice(name, "data_format", data_format, DATA_FORMATS)
    if x.shape.rank != rank:
        layout = _LAYOUTS[data_format] if rank == 4 else "[N, features]"
        raise ValueError(f"{name} expects a rank-{rank} input {layout}; got shape {x.shape}")
    if not x.dtype.is_floating:
        raise TypeError(f"{name} expects a float input (float32, bfloat16 or float16); got {x.dtype.name}")
    if dtype is not None:
        x = _cast(x, tf.as_dtype(dtype))
    return x


def _channels(x, data_format):
    return int(x.shape[-1] if data_format == "NHWC" else x.shape[1])


def _check_window_fits(name, x, data_format, kh, kw):
    h, w = spatial_dims(x, data_format)
    if (h is not None and h < kh) or (w is not None and w < kw):
        raise ValueError(f"{name}: a {kh}x{kw} VALID window does not fit an input of {h}x{w}; use larger images")


def _check_choice(name, what, value, allowed):
    if value not in allowed:
        raise ValueError(f"{name}: {what} must be one of {', '.join(allowed)}; got {value!r}")


def _strides(dh, dw, data_format):
    return (1, dh, dw, 1) if data_format == "NHWC" else (1, 1, dh, dw)


def _cast(x, dtype):
    return x if x.dtype == dtype else tf.cast(x, dtype)

