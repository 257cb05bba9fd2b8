"""Winograd minimal filtering for 3x3 stride-1 SAME convolutions (Lavin & Gray, 2015).

F(m x m, 3 x 3) computes an m x m output tile from an (m+2) x (m+2) input tile
with (m+2)^2 multiplications per channel pair instead of 9 m^2: 2.25x fewer for
F(2x2, 3x3) and 4x fewer for F(4x4, 3x3). With V = B^T d B (input tiles),
U = G g G^T (filters) and Y = A^T [sum over channels of U * V] A, the channel
sum for each of the (m+2)^2 tile positions is one matrix product, so the whole
layer is: input transform, one batched matmul, output transform.

The input transform is sums of strided views of the image scaled by the constant
coefficients below, and a small contraction with them, in a ``tf.function(jit_compile=True)`` so XLA fuses them
(unfused, their memory traffic costs more than the saved multiplications). The output transform A^T M A of every
tile is one matrix product with A^T (x) A^T (TensorFlow's matmul), and XLA puts the tiles back into an image with
the bias and ReLU. ``winograd_conv2d`` is differentiable op by op; the layer ``conv_bias_relu`` has its own
Winograd gradient (faster here).

F(6x6, 3x3) (5.06x fewer multiplications) has no table in the paper; its
matrices come from the Toom-Cook construction in ``toom_cook_transforms``.
"""
import fractions
import functools
import math

import numpy as np
import tensorflow as tf

from tfvgg.util import spatial_dims

# Lavin & Gray (2015), section 4.1 (F(2x2, 3x3)) and 4.2 (F(4x4, 3x3)).
TRANSFORMS = {
    2: dict(
        BT=[[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
        G=[[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]],
        AT=[[1, 1, 1, 0], [0, 1, -1, -1]],
    ),
    4: dict(
        BT=[[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
            [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
        G=[[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
           [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]],
        AT=[[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
    ),
}


def _polynomial_product(a, b):
    """Coefficients (lowest power first) of the product of two polynomials."""
    out = [fractions.Fraction(0)] * (len(a) + len(b) - 1)
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            out[i + j] += x * y
    return out


def toom_cook_transforms(m, points, r=3):
    """``dict(BT, G, AT)`` of F(m x m, r x r) from ``m + r - 2`` distinct interpolation points (and infinity).

    Winograd's correlation is the transpose of Toom-Cook polynomial multiplication:
    AT[i][j] = a_j^i (the outputs), G[j][k] = a_j^k / prod_{l != j}(a_j - a_l) (the
    filters) and BT row j = the coefficients of prod_{l != j}(x - a_l), the last
    row those of prod_l (x - a_l) (the point at infinity). Each BT row is scaled to
    integers and G's row divided by the same factor. Computed in exact fractions.
    """
    alpha, points = m + r - 1, [fractions.Fraction(p) for p in points]
    if len(points) != alpha - 1 or len(set(points)) != len(points):
        raise ValueError(f"F({m}, {r}) needs {alpha - 1} distinct points; got {len(points)}")
    at = [[a ** i for a in points] + [int(i == m - 1)] for i in range(m)]
    bt, g, full = [], [], [fractions.Fraction(1)]
    for j, a in enumerate(points):
        row, denominator = [fractions.Fraction(1)], fractions.Fraction(1)
        for l, b in enumerate(points):
            if l != j:
                row, denominator = _polynomial_product(row, [-b, 1]), denominator * (a - b)
        scale = math.lcm(*(c.denominator for c in row))
        bt.append([c * scale for c in row] + [0])
        g.append([a ** k / denominator / scale for k in range(r)])
        full = _polynomial_product(full, [-a, 1])
    bt.append(full)
    g.append([0] * (r - 1) + [1])
    as_floats = lambda rows: [[float(c) for c in row] for row in rows]  # noqa: E731
    return dict(BT=as_floats(bt), G=as_floats(g), AT=as_floats(at))


# The points of F(6x6, 3x3) as in Lavin & Gray's successors (wincnn): small, and symmetric, for low float error.
TRANSFORMS[6] = toom_cook_transforms(6, (0, 1, -1, 2, -2, fractions.Fraction(1, 2), fractions.Fraction(-1, 2)))
ALGORITHMS = {"winograd2": 2, "winograd4": 4, "winograd6": 6}
PRODUCTS = ("xla", "matmul")   # where a layer's (m+2)^2 batched products run: see _forward_call
DEFAULT_PRODUCTS = "matmul"    # faster than "xla" in every VGG-16 layer measured (Zen 4, batch 8: measurements.md)
# choose()'s thresholds, from the per-layer table in BUILD.md (batch 8, fp32, 2-core AVX-512 CPU; Winograd input
# and weight gradients, batches in cache-sized chunks). Filters transformed on every call (training, or inference
# without an inference copy): F(4x4) beat direct in the forward and the forward-backward pass from 128 -> 128
# channels at 112x112 down to 512 -> 512 at 28x28 (1.24x-1.56x forward, 1.57x-1.95x with gradients); it lost
# the forward pass with 64 channels in (0.68x-0.90x) and at 14x14 (0.75x: 4x4 tiles waste 30% there).
AUTO_MIN_IN_CHANNELS, AUTO_MIN_OUT_CHANNELS, AUTO_MIN_SIZE = 128, 128, 28
# Filters transformed once (ParamStore.inference_copy; forward only): F(4x4) also wins at 14x14 (512 -> 512:
# 1.27x); 28x28 512 -> 512 1.89x, 56x56 256 -> 256 1.72x, 112x112 128 -> 128 1.26x.
AUTO_MIN_SIZE_PRETRANSFORMED = 14


def _kron_matrix(name, m, dtype, flipped=False):
    """``T (x) T`` of the transform matrix ``name`` ("G" or "AT"): row (a, b), column (i, j) holds T[a, i] * T[b, j],
    so ``T X T^T`` of every tile is one matrix product with its flattened taps. ``flipped``: the columns in reverse
    order (for G, the kernel rotated by 180 degrees, as the input gradient needs)."""
    t = np.array(TRANSFORMS[m][name], np.float64)
    kron = np.kron(t, t)
    return tf.constant(kron[:, ::-1] if flipped else kron, dtype)


def transform_filters(kernel, m, flipped=False):
    """``[3, 3, C, K]`` -> ``U = G g G^T`` as ``[(m+2)^2, C, K]`` (``flipped``: of the kernel rotated 180 degrees).

    One ``[(m+2)^2, 9] x [9, C*K]`` product: as an einsum over the two tap axes it ran 4x slower (60 vs 14 ms for
    512 x 512 channels), and it runs outside XLA, so tuning a layer compiles nothing for it.
    """
    c, k = kernel.shape[2], kernel.shape[3]
    u = tf.matmul(_kron_matrix("G", m, kernel.dtype, flipped), tf.reshape(kernel, (9, -1)))
    return tf.reshape(u, (-1, c, k))


def _tiles(size, m):
    return -(-size // m)


def _weighted_sum(terms):
    """sum(c * x) over (c, x) with c != 0, without multiplying by 1."""
    out = None
    for c, x in terms:
        if c == 0:
            continue
        term = x if c == 1 else (-x if c == -1 else x * c)
        out = term if out is None else out + term
    return out


def input_transform(x, m):
    """NHWC ``x`` ``[N, H, W, C]`` -> ``V = B^T d B`` of every (m+2)^2 input tile, ``[(m+2)^2, N*th*tw, C]``.

    Tiles overlap by 2; the input is zero-padded by 1 (SAME) and up to whole m x m output tiles. Separable: B^T
    along H as m+2 sums of scaled strided row views of the whole image (fused by XLA into one pass), then along W
    as one contraction over the m+2 strided column views. Sums in both stages ((m+2)^2 outputs) ran about as fast
    but took XLA 4-6x as long to compile (F(4x4) 1.6 s, F(6x6) 3.0 s), most of what tuning a layer costs;
    contractions in both stages compiled as fast and ran VGG-16's forward pass 13% slower. The images and tile
    rows are one axis in the second stage: with an axis of 2 images there, XLA took 0.4-2.7 s to compile this
    (over 1.5 s for 8 of VGG-16's 16 layer shapes and algorithms), 0.2-0.6 s merged, and 0.2-1.2 s either way for
    1, 4 or 8 images (bit-identical results, the same speed measured interleaved; Zen 3, TF 2.21).
    """
    bt, alpha = TRANSFORMS[m]["BT"], m + 2
    _, h, w, c = x.shape
    tiles_h, tiles_w = _tiles(h, m), _tiles(w, m)
    padded = tf.pad(x, ((0, 0), (1, tiles_h * m + 1 - h), (1, tiles_w * m + 1 - w), (0, 0)))
    rows = [padded[:, i:i + m * (tiles_h - 1) + 1:m] for i in range(alpha)]        # row i of every tile row
    along_h = tf.stack([_weighted_sum((bt[a][i], rows[i]) for i in range(alpha)) for a in range(alpha)])
    along_h = tf.reshape(along_h, (alpha, -1, along_h.shape[3], c))                 # [a, N*th, W', C]
    cols = tf.stack([along_h[:, :, j:j + m * (tiles_w - 1) + 1:m] for j in range(alpha)])   # [j, a, N*th, tw, C]
    v = tf.einsum("bj,jarwc->abrwc", tf.constant(bt, x.dtype), cols)
    return tf.reshape(v, (alpha * alpha, -1, c))                                   # [alpha^2, N*th*tw, C]


def output_transform(mm, n, h, w, m):
    """``M`` ``[(m+2)^2, N*th*tw, K]`` -> ``Y = A^T M A`` assembled into NHWC ``[N, H, W, K]`` (two small
    contractions, each over one tile axis)."""
    at, alpha = tf.constant(TRANSFORMS[m]["AT"], mm.dtype), m + 2
    tiles_h, tiles_w, k = _tiles(h, m), _tiles(w, m), mm.shape[-1]
    mm = tf.reshape(mm, (alpha, alpha, n, tiles_h, tiles_w, k))
    cols = tf.einsum("qb,abnhwk->aqnhwk", at, mm)
    y = tf.einsum("pa,aqnhwk->nhpwqk", at, cols)                              # [N, th, m, tw, m, K]
    return tf.reshape(y, (n, tiles_h * m, tiles_w * m, k))[:, :h, :w, :]


def filter_gradient_transform(du, m):
    """The adjoint of ``transform_filters``: ``dL/dU`` ``[(m+2)^2, C, K]`` -> ``dL/dg = G^T dU G``, ``[3, 3, C, K]``."""
    c, k = du.shape[1], du.shape[2]
    dg = tf.matmul(_kron_matrix("G", m, du.dtype), tf.reshape(du, (du.shape[0], -1)), transpose_a=True)
    return tf.reshape(dg, (3, 3, c, k))


def winograd_conv2d(x, kernel, m=4, transformed_kernel=None):
    """3x3 stride-1 SAME convolution of NHWC ``x`` ``[N, H, W, C]`` with ``kernel`` ``[3, 3, C, K]``.

    Any H and W: the input is padded to whole m x m tiles and the output cropped.
    Returns ``[N, H, W, K]`` in ``x``'s dtype.
    """
    n, h, w, _ = x.shape
    n = tf.shape(x)[0] if n is None else n
    u = transform_filters(kernel, m) if transformed_kernel is None else transformed_kernel
    mm = tf.matmul(input_transform(x, m), tf.cast(u, x.dtype))                # [alpha^2, N*th*tw, K]
    return output_transform(mm, n, h, w, m)


def _to_nhwc(x, data_format):
    return tf.transpose(x, (0, 2, 3, 1)) if data_format == "NCHW" else x


def _from_nhwc(x, data_format):
    return tf.transpose(x, (0, 3, 1, 2)) if data_format == "NCHW" else x


def _forward(x, u, bias, m, data_format):
    """``relu(conv3x3(x) + bias)`` from transformed filters ``u``: input transform, products, output transform."""
    height, width = spatial_dims(x, data_format)
    mm = tf.matmul(_input_tiles(x, m, data_format), tf.cast(u, x.dtype))
    return _output_bias_relu(mm, bias, height, width, m, data_format)


def _input_tiles(x, m, data_format):
    """``input_transform`` of NHWC/NCHW ``x``: the first of ``_forward``'s parts, and an XLA function of its own when
    the products run apart."""
    return input_transform(_to_nhwc(x, data_format), m)


def _output_bias_relu(mm, bias, height, width, m, data_format):
    """``relu(A^T M A + bias)`` from the products ``M`` ``[(m+2)^2, N*th*tw, K]``: the last of ``_forward``'s parts."""
    y = tf.nn.relu(output_transform(mm, -1, height, width, m) + bias)
    return _from_nhwc(y, data_format)


def _output_tiles(mm, m):
    """``A^T M A`` of every tile as one matrix product, ``[(m+2)^2, T, K]`` -> ``[m^2, T*K]`` (row (p, q) of every
    output tile). Outside XLA, TensorFlow's matmul reads M once; XLA's two small contractions copied and transposed
    it and ran 3-4x slower (batch 8, 56x56 256 -> 256 F(4x4): 32 ms against 7.5 with ``_image_bias_relu``)."""
    return tf.matmul(_kron_matrix("AT", m, mm.dtype), tf.reshape(mm, (mm.shape[0], -1)))


def _nhwc_image(y, height, width, m, channels):
    """Output tiles ``[m^2, N*th*tw*channels]`` (row (p, q) of every tile, as ``_output_tiles`` gives them) -> the
    NHWC image ``[N, height, width, channels]`` (the tiles' padding cropped)."""
    tiles_h, tiles_w = _tiles(height, m), _tiles(width, m)
    y = tf.transpose(tf.reshape(y, (m, m, -1, tiles_h, tiles_w, channels)), (2, 3, 0, 4, 1, 5))   # [N,th,p,tw,q,C]
    return tf.reshape(y, (-1, tiles_h * m, tiles_w * m, channels))[:, :height, :width, :]


def _image(y, height, width, m, channels, data_format):
    """``_nhwc_image`` in ``data_format``."""
    return _from_nhwc(_nhwc_image(y, height, width, m, channels), data_format)


def _image_bias_relu(y, bias, height, width, m, data_format):
    """``relu(Y + bias)`` in ``data_format`` from the output tiles of ``_output_tiles`` (see ``_nhwc_image``)."""
    return _from_nhwc(tf.nn.relu(_nhwc_image(y, height, width, m, bias.shape[0]) + bias), data_format)


def _forward_call(x, u, bias, m, data_format, products):
    """``_forward`` on one chunk: one XLA function (``products="xla"``), or (``"matmul"``) the input transform in
    XLA, then the (m+2)^2 products and the output transform's contraction (``_output_tiles``) as TensorFlow's
    matmuls (oneDNN's kernels where TensorFlow uses oneDNN), then tiles to image + bias + ReLU in XLA. Which is
    faster depends on the shape and the CPU: measured on a 2-core AVX2 CPU, batch 1, 14x14 512 -> 512 F(2x2):
    11.7 ms in one function, 8.8 ms apart (before the output transform moved out too); 224x224 64 -> 64 F(6x6):
    32.1 against 36.0 ms. ``tfvgg.autotune`` times both."""
    if products == "xla":
        return _xla(_forward, x, u, bias, m=m, data_format=data_format)
    height, width = spatial_dims(x, data_format)
    tiles = _xla(_input_tiles, x, m=m, data_format=data_format)
    y = _output_tiles(tf.matmul(tiles, tf.cast(u, tiles.dtype)), m)
    return _xla(_image_bias_relu, y, bias, height=height, width=width, m=m, data_format=data_format)


def _input_gradient_filters(kernel, m):
    """dL/dx of a 3x3 SAME convolution is the 3x3 convolution of dL/dz with the kernel flipped and transposed:
    ``[(m+2)^2, K, C]``."""
    return transform_filters(tf.transpose(kernel, (0, 1, 3, 2)), m, flipped=True)


def _gradient_tiles(dz, m, data_format):
    """The backward pass's first XLA function, from dL/dz (z = conv + bias, before the ReLU): its tiles for dL/dx
    ``[(m+2)^2, T, K]``, dL/dz cut into output tiles ``[m^2, T*K]`` (for dL/dM = A dz A^T) and dL/dbias."""
    dz = _to_nhwc(dz, data_format)
    _, h, w, k = dz.shape
    tiles_h, tiles_w = _tiles(h, m), _tiles(w, m)
    padded = tf.pad(dz, ((0, 0), (0, tiles_h * m - h), (0, tiles_w * m - w), (0, 0)))
    out_tiles = tf.transpose(tf.reshape(padded, (-1, tiles_h, m, tiles_w, m, k)), (2, 4, 0, 1, 3, 5))
    return input_transform(dz, m), tf.reshape(out_tiles, (m * m, -1)), tf.reduce_sum(dz, axis=(0, 1, 2))


def _backward_call(x, dz, u_flipped, m, data_format):
    """One chunk's backward pass: (dL/dx, the input tiles V recomputed from ``x``, dL/dM, dL/dbias). XLA functions
    (``_gradient_tiles``, the image of dL/dx, V) around TensorFlow's matmuls: dL/dx's products and output
    contraction, and dL/dM = A dz A^T as one product (inside one XLA function these ran 1.04x-1.3x slower in
    float32, 1.8x in bfloat16: batch 8, 28x28 512 -> 512, 2-core Zen 4). V waits for dL/dM, so it is not alive
    beside the tiles of dL/dz and their products."""
    height, width = spatial_dims(x, data_format)
    dz_tiles, dz_out, dbias = _xla(_gradient_tiles, dz, m=m, data_format=data_format)
    dx = _output_tiles(tf.matmul(dz_tiles, u_flipped), m)
    dx = _xla(_image, dx, height=height, width=width, m=m, channels=u_flipped.shape[-1], data_format=data_format)
    dm = tf.matmul(_kron_matrix("AT", m, dz_out.dtype), dz_out, transpose_a=True)
    with tf.control_dependencies([dm]):
        tiles = _xla(_input_tiles, x, m=m, data_format=data_format)
    return dx, tiles, tf.reshape(dm, (dm.shape[0], -1, dz_tiles.shape[-1])), dbias


_XLA_FUNCTIONS = {}


def _xla(fn, *tensors, **static):
    """``fn(*tensors, **static)`` XLA-compiled, by one ``tf.function`` per function, static arguments and tensor
    shapes, so each is traced once (one function shared by all of VGG's layer shapes would be retraced for each,
    and TensorFlow warns about that)."""
    key = (fn, tuple(sorted(static.items())), tuple((tuple(t.shape), t.dtype) for t in tensors))
    if key not in _XLA_FUNCTIONS:
        # Plain TensorFlow code, nothing for AutoGraph to convert: traced without it, F(4x4) took 0.36 s, not 1.0.
        _XLA_FUNCTIONS[key] = tf.function(functools.partial(fn, **static), jit_compile=True, autograph=False)
    return _XLA_FUNCTIONS[key](*tensors)


# Images per XLA call: a layer runs on chunks of the batch whose input tiles V and products M, together
# (m+2)^2 * tiles * (C_in + C_out) * bytes, fit in about this much, so they stay in the cache between the transforms
# and the matmul. Measured on the 2-core CPU (32 MiB L3), VGG-16 batch 8, filters transformed once: 112x112
# 128 -> 128 77 ms in one call, 49 ms image by image (29 MiB each); 56x56 256 -> 256 38 -> 30 ms; 14x14 512 -> 512
# best with the whole batch (19 MiB). At batch 32, 28x28 512 -> 512: 146 ms in one call, 110 ms in chunks of 4.
CHUNK_BYTES = 24 * 2 ** 20


def chunk_sizes(x_shape, c_out, m, data_format="NHWC", itemsize=4, chunk=None):
    """How ``conv_bias_relu`` splits the batch: a list of chunk sizes, or None for one call (or unknown batch).

    ``chunk``: images per call (the autotuner's measured choice); None: as many as fit ``CHUNK_BYTES``.
    """
    n, h, w, c_in = x_shape if data_format == "NHWC" else (x_shape[0], *x_shape[2:], x_shape[1])
    if n is None:
        return None
    if chunk is None:
        per_image = (m + 2) ** 2 * _tiles(h, m) * _tiles(w, m) * (c_in + c_out) * itemsize
        chunk = max(1, CHUNK_BYTES // per_image)
    if chunk >= n:
        return None
    return [chunk] * (n // chunk) + ([n % chunk] if n % chunk else [])


def training_chunk_limit(batch, height, width, c_in, c_out, m):
    """The most images per call that keep a training call's Winograd-domain scratch within what the layer's
    gradient holds anyway (at least 1).

    Scratch of one image in the backward call: the input tiles V, dL/dM, the tiles of dL/dz and their product
    for dL/dx, ``(m+2)^2 * tiles * 2 * (C_in + C_out)`` values. Held anyway: the larger of direct's dL/dz and
    dL/dx for the whole batch (``N*H*W*(C_in + C_out)``) and Winograd's transformed filters, their flipped copy
    and dL/dU (``3 * (m+2)^2 * C_in * C_out``). Measured, VGG-16 batch 32 training: with whole-batch calls at
    56x56 256 -> 256 and 14x14 (882 and 144 MiB of scratch) the peak RSS was 6.0 GiB; 4.1 GiB (1.10x keras)
    within this limit.
    """
    per_image = (m + 2) ** 2 * _tiles(height, m) * _tiles(width, m) * 2 * (c_in + c_out)
    held = max(batch * height * width * (c_in + c_out), 3 * (m + 2) ** 2 * c_in * c_out)
    return max(1, min(batch, held // per_image))


def _chunk(t, start, size):
    """Images ``start .. start + size`` of the batch-major ``t`` (``start`` may be a tensor), with a static shape."""
    # A constant size: XLA (a step compiled whole) takes it as a dynamic slice of static shape.
    piece = tf.slice(t, tf.stack([start] + [0] * (t.shape.rank - 1)), [size, *t.shape[1:]])
    piece.set_shape([size, *t.shape[1:]])
    return piece


def _in_chunks(step, tensors, sizes, output_shape):
    """``step(pieces, carry) -> (output, carry)`` on successive chunks of the batch-major ``tensors``, one chunk
    at a time; returns (the outputs concatenated along the batch, the last carry). ``carry`` is None for the first
    chunk, then whatever the step before returned (a tuple of tensors); ``sizes``: ``chunk_sizes``'s list.

    The first chunk runs alone, the other full ones in a ``tf.while_loop`` that runs one iteration at a time
    (``parallel_iterations=1``: unordered, the executor would start every chunk's input transform at once and hold
    all their tiles), the shorter last one after it. So the graph holds the step at most three times, whatever the
    batch: unrolled chunk by chunk, VGG-16's batch-32 training graph with auto's picks had 7,403 nodes against
    direct's 354, and building it held 190 MiB more host memory.
    """
    if not sizes:
        return step(tensors, None)
    chunk, count = sizes[0], sizes.count(sizes[0])
    first, carry = step([_chunk(t, 0, chunk) for t in tensors], None)
    # Elements of one shape (the last chunk, if shorter, is concatenated after): XLA's TensorLists need that.
    outputs = tf.TensorArray(first.dtype, size=count, element_shape=first.shape).write(0, first)
    if count > 1:
        def body(i, outputs, *carry):
            output, carry = step([_chunk(t, i * chunk, chunk) for t in tensors], carry)
            return (i + 1, outputs.write(i, output), *carry)

        with tf.control_dependencies([first, *carry]):   # the loop's counter: its chunks wait for the first's
            start = tf.constant(1)
        _, outputs, *carry = tf.while_loop(lambda i, *_: i < count, body, (start, outputs, *carry),
                                           parallel_iterations=1)
    result = outputs.concat()
    if count < len(sizes):
        with tf.control_dependencies([result]):
            last, carry = step([t[count * chunk:] for t in tensors], tuple(carry))
        result = tf.concat([result, last], axis=0)   # a copy more; auto's chunk sizes divide the batch
    result.set_shape(output_shape)
    return result, tuple(carry)


def _forward_chunks(x, sizes, u, bias, m, data_format, products):
    """``_forward_call`` on each chunk of ``x`` in turn (``_in_chunks``), concatenated."""
    c_out = u.shape[-1]
    shape = [*x.shape[:3], c_out] if data_format == "NHWC" else [x.shape[0], c_out, *x.shape[2:]]
    step = lambda pieces, _: (_forward_call(pieces[0], u, bias, m, data_format, products), ())  # noqa: E731
    return _in_chunks(step, [x], sizes, shape)[0]


def conv_bias_relu(x, kernel, bias, algorithm, data_format="NHWC", transformed_kernel=None, chunk=None,
                   products=DEFAULT_PRODUCTS):
    """``relu(conv3x3(x) + bias)`` by Winograd, forward and backward.

    ``algorithm``: "winograd2", "winograd4" or "winograd6". The gradient is a
    ``tf.custom_gradient``: dL/dx by the same Winograd algorithm, and dL/dkernel
    by Winograd too: with dM = A dz A^T per output tile, dL/dU = sum over tiles of
    V^T dM (one batched matmul) and dL/dkernel = G^T dL/dU G. The input tiles V
    are recomputed from x in the backward pass rather than kept: keeping them
    cost (m+2)^2/m^2 times each layer's input in memory (2.25x for F(4x4)).
    Batches run in chunks of ``chunk`` images per call (None: ``chunk_sizes``'s
    rule). ``transformed_kernel``: ``transform_filters(kernel, m)`` computed in
    advance, for inference with frozen weights (no gradient then). ``products``:
    the forward pass's products and output contraction as TensorFlow matmuls
    ("matmul", the default: faster on most layers measured) or inside one XLA
    function with the transforms ("xla"; ``_forward_call``); the backward
    pass's always run as matmuls (``_backward_call``).
    """
    if products not in PRODUCTS:
        raise ValueError(f"products must be one of {', '.join(PRODUCTS)}; got {products!r}")
    m = ALGORITHMS[algorithm]
    x = tf.convert_to_tensor(x)
    c_out = (kernel if transformed_kernel is None else transformed_kernel).shape[-1]
    sizes = chunk_sizes(x.shape, c_out, m, data_format, x.dtype.size, chunk)
    if transformed_kernel is not None:
        u = tf.convert_to_tensor(transformed_kernel)
        return _forward_chunks(x, sizes, u, bias, m, data_format, products)

    fused = _trainable_conv(sizes, m, data_format, products)
    return fused(x, tf.convert_to_tensor(kernel), tf.convert_to_tensor(bias))


def _trainable_conv(sizes, m, data_format, products):
    """``fused(x, kernel, bias)``: ``conv_bias_relu``'s computation in chunks of ``sizes`` images, with its
    Winograd gradient (``tf.custom_gradient``)."""

    @tf.custom_gradient
    def fused(x, kernel, bias):
        # Ops on the kernel alone are ready when the step starts, and the executor would run every layer's
        # transform then and hold them all until their layers run (38 MiB per 512 -> 512 layer in F(4x4)).
        with tf.control_dependencies([x]):
            u = transform_filters(kernel, m)   # once per call, for every chunk
        y = _forward_chunks(x, sizes, u, bias, m, data_format, products)

        def gradient(dy):
            # Only x and y are kept from the forward pass (the layers before and after hold them anyway); the
            # chunks are cut again here and run one at a time (``_in_chunks``), so one chunk's tiles are alive at a
            # time (independent chunks may otherwise all run first: measured, batch-32 training then took 1.9x
            # keras's memory).
            with tf.control_dependencies([dy]):   # not at the step's start (see u above)
                u_flipped = _input_gradient_filters(kernel, m)
            # Through the ReLU once, for the whole batch, as direct's backward does: dL/dz may take dL/dy's
            # buffer, and y is then free; split per chunk, y and dL/dy were both held to the last chunk (F(6x6),
            # 224x224 64->64 batch-32 training: 317 MiB more at the step's peak).
            dz = tf.raw_ops.ReluGrad(gradients=dy, features=y)

            def chunk_gradient(pieces, carry):
                dx, tiles, dm, db = _backward_call(*pieces, u_flipped, m, data_format)
                # This sum over the N*th*tw tiles runs as TensorFlow's (oneDNN) batched matmul: XLA's CPU matmul
                # took 1.6x as long for this shape.
                du = tf.matmul(tiles, dm, transpose_a=True)          # [alpha^2, C, K]
                return dx, ((du, db) if carry is None else (carry[0] + du, carry[1] + db))

            dx, (du, dbias) = _in_chunks(chunk_gradient, [x, dz], sizes, x.shape)
            return dx, filter_gradient_transform(du, m), dbias

        return y, gradient

    return fused


def max_relative_error(x, kernel, m):
    """max |winograd - tf.nn.conv2d| / max |tf.nn.conv2d| for NHWC ``x`` (for tests and reports)."""
    reference = tf.nn.conv2d(x, kernel, 1, "SAME")
    ours = winograd_conv2d(x, kernel, m)
    return float(tf.reduce_max(tf.abs(ours - reference)) / tf.reduce_max(tf.abs(reference)))


def choose(kh, kw, dh, dw, padding, height, width, c_in, c_out, dtype=tf.float32, pretransformed=False):
    """The algorithm "auto" uses for one layer: a rule read off ``python -m benchmarks.conv_layers``.

    Winograd pays where channels are many (the transforms' memory traffic is per
    channel, the saved multiplications per channel pair) and the image is not
    much smaller than a few tiles; elsewhere oneDNN's direct convolution wins.
    """
    if not supports(kh, kw, dh, dw, padding) or tf.as_dtype(dtype) != tf.float32:
        return "direct"   # in bfloat16 oneDNN's direct kernels were 1.6x-2.4x faster than these, and more exact
    if tf.config.list_physical_devices("GPU"):
        return "direct"   # cuDNN picks its own algorithm per layer (Winograd among them); the rule below is the CPU's
    min_size = AUTO_MIN_SIZE_PRETRANSFORMED if pretransformed else AUTO_MIN_SIZE
    if c_in >= AUTO_MIN_IN_CHANNELS and c_out >= AUTO_MIN_OUT_CHANNELS and min(height, width) >= min_size:
        return "winograd4"
    return "direct"


def check_precision(algorithm, dtype):
    """F(4x4,3x3)'s transform coefficients (up to 8 and 1/24) cost bfloat16/float16 ~10% relative error, F(6x6)'s
    (up to 32 and 1/360) more: refuse both in 16-bit types."""
    if algorithm in ("winograd4", "winograd6") and tf.as_dtype(dtype) in (tf.bfloat16, tf.float16):
        raise ValueError(f"{algorithm} in {tf.as_dtype(dtype).name} loses 10% or more relative accuracy (winograd4 "
                         "measured 0.115); use winograd2 or direct")


def supports(kh, kw, dh, dw, padding):
    """Whether Winograd F(m x m, 3 x 3) as written here computes this convolution."""
    return (kh, kw, dh, dw, padding) == (3, 3, 1, 1, "SAME")


