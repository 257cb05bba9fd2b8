"""Winograd convolution against tf.nn.conv2d: values, gradients, layouts, auto's choices, errors."""
import numpy as np
import pytest
import tensorflow as tf

import tfvgg
from tfvgg import winograd
from tfvgg.ops import nchw_supported
from tests.conftest import random_images

SHAPES = [(1, 7, 9, 1, 4), (2, 13, 6, 3, 5), (1, 4, 4, 8, 2), (3, 16, 16, 16, 16), (2, 5, 17, 6, 9)]


def direct(x, kernel, bias, data_format="NHWC"):
    return tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, kernel, 1, "SAME", data_format=data_format), bias,
                                     data_format=data_format))


TOLERANCES = {"winograd2": 1e-5, "winograd4": 2e-5, "winograd6": 5e-5}
# F(6x6) compiles in 5-15 s per shape (XLA): two odd shapes each for values and gradients.
CASES = [(a, s) for a in ("winograd2", "winograd4") for s in SHAPES] + [("winograd6", SHAPES[1]),
                                                                         ("winograd6", SHAPES[4])]
NCHW_CASE = (2, 9, 7, 5, 6)


@pytest.mark.parametrize("algorithm,shape", CASES)
def test_matches_conv2d_on_odd_shapes(rng, algorithm, shape):
    tolerance = TOLERANCES[algorithm]
    n, h, w, c, k = shape
    x = random_images(rng, (n, h, w, c))
    kernel = random_images(rng, (3, 3, c, k))
    bias = random_images(rng, (k,))
    ours = winograd.conv_bias_relu(x, kernel, bias, algorithm)
    expected = direct(x, kernel, bias)
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours.numpy(), expected.numpy(), rtol=0, atol=tolerance * np.abs(expected).max())


@pytest.mark.parametrize("algorithm", ["winograd2", "winograd4"])
def test_nchw(rng, algorithm):
    x = random_images(rng, (2, 11, 10, 3))
    kernel, bias = random_images(rng, (3, 3, 3, 4)), random_images(rng, (4,))
    nchw = winograd.conv_bias_relu(tf.transpose(x, (0, 3, 1, 2)), kernel, bias, algorithm, data_format="NCHW")
    np.testing.assert_allclose(tf.transpose(nchw, (0, 2, 3, 1)).numpy(), direct(x, kernel, bias).numpy(),
                               rtol=0, atol=2e-5 * np.abs(direct(x, kernel, bias)).max())


@pytest.mark.parametrize("algorithm,shape,data_format",
                         [(a, s, "NHWC") for a, s in CASES]
                         + [(a, NCHW_CASE, "NCHW") for a in ("winograd2", "winograd4")])
def test_gradients_equal_the_direct_gradients(rng, algorithm, shape, data_format):
    """Input, weight and bias gradients of the custom (Winograd) gradient against TensorFlow's kernels."""
    if data_format == "NCHW" and not nchw_supported():
        pytest.skip("no NCHW convolution kernel on this CPU to compare with")
    n, h, w, c, k = shape
    images = random_images(rng, (n, h, w, c))
    x = tf.Variable(tf.transpose(images, (0, 3, 1, 2)) if data_format == "NCHW" else images)
    kernel, bias = tf.Variable(random_images(rng, (3, 3, c, k))), tf.Variable(random_images(rng, (k,)))
    with tf.GradientTape(persistent=True) as tape:
        ours = tf.reduce_sum(tf.square(winograd.conv_bias_relu(x, kernel, bias, algorithm, data_format)))
        reference = tf.reduce_sum(tf.square(direct(x, kernel, bias, data_format)))
    for a, b in zip(tape.gradient(ours, [x, kernel, bias]), tape.gradient(reference, [x, kernel, bias])):
        assert a.shape == b.shape
        tolerance = max(2e-5, TOLERANCES[algorithm])
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=tolerance * np.abs(b).max())


def test_toom_cook_construction_reproduces_the_papers_f4_table():
    """Lavin & Gray's F(4x4, 3x3) matrices, from the points 0, 1, -1, 2, -2 (and infinity)."""
    generated = winograd.toom_cook_transforms(4, (0, 1, -1, 2, -2))
    for name in ("BT", "G", "AT"):
        np.testing.assert_allclose(generated[name], winograd.TRANSFORMS[4][name], rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="needs 5 distinct points"):
        winograd.toom_cook_transforms(4, (0, 1, -1, 2, 2))


@pytest.mark.parametrize("m", [2, 4, 6])
def test_transforms_compute_a_1d_correlation_exactly(rng, m):
    """y = AT [(G g) * (BT d)] is the correlation of d (m + 2 values) with g (3), in float64."""
    t = {k: np.array(v) for k, v in winograd.TRANSFORMS[m].items()}
    d, g = rng.normal(size=m + 2), rng.normal(size=3)
    expected = [d[i:i + 3] @ g for i in range(m)]
    np.testing.assert_allclose(t["AT"] @ ((t["G"] @ g) * (t["BT"] @ d)), expected, rtol=0, atol=1e-12)


def test_explicit_chunk_splits_the_batch():
    assert winograd.chunk_sizes((8, 14, 14, 512), 512, 4, chunk=3) == [3, 3, 2]
    assert winograd.chunk_sizes((8, 14, 14, 512), 512, 4, chunk=8) is None
    assert winograd.chunk_sizes((8, 112, 112, 128), 128, 4, chunk=None) == [1] * 8


def test_chunk_sizes_follow_the_working_set():
    # 112x112, 128 -> 128, F(4x4): 28*28 tiles * 36 * 256 channels * 4 bytes = 28.9 MB per image > 24 MiB.
    assert winograd.chunk_sizes((8, 112, 112, 128), 128, 4) == [1] * 8
    assert winograd.chunk_sizes((8, 128, 112, 112), 128, 4, "NCHW") == [1] * 8
    assert winograd.chunk_sizes((8, 14, 14, 512), 512, 4) is None          # 2.4 MB per image: one call
    assert winograd.chunk_sizes((32, 28, 28, 512), 512, 4) == [3] * 10 + [2]
    assert winograd.chunk_sizes((None, 112, 112, 128), 128, 4) is None


def test_training_chunk_limit_keeps_scratch_within_what_the_gradient_holds():
    # 56x56 256 -> 256, F(4x4), batch 32: 14*14 tiles * 36 * 2 * 512 channels = 7.2 M values per image; held:
    # 32 * 56*56 * 512 = 51.4 M (direct's dL/dz and dL/dx) > 3 * 36 * 256*256 = 7.1 M (filters) -> 7 images.
    assert winograd.training_chunk_limit(32, 56, 56, 256, 256, 4) == 7
    # 14x14 512 -> 512, batch 8: the filters (3 * 36 * 512*512) outweigh the activations (8 * 196 * 1024).
    assert winograd.training_chunk_limit(8, 14, 14, 512, 512, 4) == 8
    assert winograd.training_chunk_limit(32, 14, 14, 512, 512, 4) == 3 * 36 * 512 * 512 // (36 * 16 * 2 * 1024)
    assert winograd.training_chunk_limit(1, 224, 224, 64, 64, 2) == 1


def test_filter_transforms_wait_for_their_layers_input():
    """A transform of the kernel alone could run when the step starts, and the executor would run every layer's
    then and hold them all: the forward one waits for x, the input gradient's for dL/dy."""
    kernel, bias = tf.Variable(tf.ones((3, 3, 4, 8))), tf.Variable(tf.zeros((8,)))

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.square(winograd.conv_bias_relu(x, kernel, bias, "winograd4")))
        return tape.gradient(loss, [x, kernel])

    graph = step.get_concrete_function(tf.TensorSpec((2, 8, 8, 4), name="x")).graph
    transforms = [op for op in graph.get_operations()
                  if op.type == "MatMul" and [i.shape[0] for i in op.inputs] == [36, 9]]   # [36, 9] x [9, C*K]
    assert len(transforms) == 2                     # U for the forward pass, the flipped one for dL/dx

    def needs_x(op):
        seen, stack = set(), [op]
        while stack:
            current = stack.pop()
            for parent in [t.op for t in current.inputs] + list(current.control_inputs):
                if parent.name == "x":
                    return True
                if parent.name not in seen:
                    seen.add(parent.name)
                    stack.append(parent)
        return False

    assert all(needs_x(op) for op in transforms)


@pytest.mark.parametrize("transformed", [False, True])
def test_batches_in_chunks_give_the_same_results_and_gradients(rng, monkeypatch, transformed):
    x = tf.Variable(random_images(rng, (5, 9, 8, 3)))
    kernel, bias = tf.Variable(random_images(rng, (3, 3, 3, 4))), tf.Variable(random_images(rng, (4,)))
    per_image = 36 * 3 * 2 * (3 + 4) * 4
    monkeypatch.setattr(winograd, "CHUNK_BYTES", 2 * per_image)
    assert winograd.chunk_sizes(x.shape, 4, 4) == [2, 2, 1]
    u = winograd.transform_filters(kernel, 4) if transformed else None
    with tf.GradientTape(persistent=True) as tape:
        ours = winograd.conv_bias_relu(x, kernel, bias, "winograd4", transformed_kernel=u)
        reference = direct(x, kernel, bias)
        losses = [tf.reduce_sum(tf.square(y)) for y in (ours, reference)]
    np.testing.assert_allclose(ours.numpy(), reference.numpy(), rtol=0, atol=2e-5 * np.abs(reference).max())
    if not transformed:
        for a, b in zip(tape.gradient(losses[0], [x, kernel, bias]), tape.gradient(losses[1], [x, kernel, bias])):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=2e-5 * np.abs(b).max())


@pytest.mark.parametrize("algorithm,data_format", [("winograd2", "NHWC"), ("winograd4", "NHWC"),
                                                   ("winograd6", "NHWC"), ("winograd4", "NCHW")])
def test_products_inside_one_xla_function_give_the_same_values_and_gradients(rng, algorithm, data_format):
    """products="xla" (the other placement; the default, "matmul", runs the products and the output transform's
    contraction as TensorFlow matmuls between two XLA functions): the forward pass as one XLA function."""
    if data_format == "NCHW" and not nchw_supported():
        pytest.skip("no NCHW convolution kernel on this CPU to compare with")
    n, h, w, c, k = SHAPES[4]
    images = random_images(rng, (n, h, w, c))
    x = tf.Variable(tf.transpose(images, (0, 3, 1, 2)) if data_format == "NCHW" else images)
    kernel, bias = tf.Variable(random_images(rng, (3, 3, c, k))), tf.Variable(random_images(rng, (k,)))
    u = winograd.transform_filters(kernel, winograd.ALGORITHMS[algorithm])
    atol = lambda reference: TOLERANCES[algorithm] * np.abs(reference).max()  # noqa: E731
    with tf.GradientTape(persistent=True) as tape:
        reference = direct(x, kernel, bias, data_format)
        for transformed, chunk in ((u, None), (u, 1), (None, 1)):
            ours = winograd.conv_bias_relu(x, kernel, bias, algorithm, data_format, transformed, chunk, "xla")
            np.testing.assert_allclose(ours.numpy(), reference.numpy(), rtol=0, atol=atol(reference))
        losses = [tf.reduce_sum(tf.square(y)) for y in (ours, reference)]   # the last: training, in chunks
    for a, b in zip(tape.gradient(losses[0], [x, kernel, bias]), tape.gradient(losses[1], [x, kernel, bias])):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=max(2e-5, TOLERANCES[algorithm]) *
                                   np.abs(b).max())
    unknown_batch = tf.function(lambda x: winograd.conv_bias_relu(x, kernel, bias, algorithm, data_format, u,
                                                                  products="xla"),
                                input_signature=[tf.TensorSpec([None, *x.shape[1:]])])
    np.testing.assert_allclose(unknown_batch(x).numpy(), reference.numpy(), rtol=0, atol=atol(reference))
    with pytest.raises(ValueError, match="products must be one of xla, matmul; got 'gpu'"):
        winograd.conv_bias_relu(x, kernel, bias, algorithm, data_format, u, products="gpu")


def _values_and_gradients(conv, x, kernel, bias):
    """``conv(x, kernel, bias)`` and the gradients of its sum of squares with respect to all three."""
    with tf.GradientTape() as tape:
        y = conv(x, kernel, bias)
        loss = tf.reduce_sum(tf.square(y))
    return y, tape.gradient(loss, [x, kernel, bias])


def _input_transform_calls(graph_def):
    """How many times the graph (with the loop bodies in its function library) calls ``_input_tiles``."""
    names = {f.get_concrete_function(*[tf.TensorSpec(shape, dtype) for shape, dtype in key[2]]).name.decode()
             for key, f in winograd._XLA_FUNCTIONS.items() if key[0] is winograd._input_tiles}
    nodes = [*graph_def.node, *(n for f in graph_def.library.function for n in f.node_def)]
    return sum(1 for n in nodes if n.op in ("StatefulPartitionedCall", "PartitionedCall") and n.attr["f"].func.name
               in names)


@pytest.mark.parametrize("batch", [3, 7])
def test_chunks_run_in_turn_in_a_loop_forward_and_backward(rng, batch):
    """Chunks of one image: the first alone, the rest in a loop of one iteration at a time (so one chunk's tiles
    are alive at a time), so the graph does not grow with the batch; same values and gradients as direct."""
    x = tf.Variable(random_images(rng, (batch, 8, 8, 4)))
    kernel, bias = tf.Variable(random_images(rng, (3, 3, 4, 4))), tf.Variable(random_images(rng, (4,)))
    step = tf.function(lambda conv: _values_and_gradients(conv, x, kernel, bias))
    ours = lambda *a: winograd.conv_bias_relu(*a, "winograd2", chunk=2)  # noqa: E731
    (y, grads), (reference, reference_grads) = step(ours), step(direct)
    np.testing.assert_allclose(y.numpy(), reference.numpy(), rtol=0, atol=1e-5 * np.abs(reference).max())
    for a, b in zip(grads, reference_grads):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-5 * np.abs(b).max())
    graph = step.get_concrete_function(ours).graph
    # Batch 3: [2, 1], the first chunk and the last; batch 7: [2, 2, 2, 1], first, loop body, last. Each forward
    # and backward.
    assert _input_transform_calls(graph.as_graph_def()) == (4 if batch == 3 else 6)
    loops = [op for op in graph.get_operations() if op.type in ("While", "StatelessWhile")]
    assert len(loops) == (0 if batch == 3 else 2)
    # One iteration at a time, from a counter (the input after while_v2's own two) that waits for the first chunk:
    # its output, and in the backward pass its weight-gradient products too.
    assert all(op.get_attr("parallel_iterations") == 1 for op in loops)
    assert [len(op.inputs[2].op.control_inputs) for op in loops] == ([] if batch == 3 else [1, 3])


def test_chunks_compile_inside_a_step_compiled_whole_by_xla(rng):
    """``--xla`` compiles the whole step, the chunks' loop with it (it needs static slice and list shapes)."""
    x = tf.Variable(random_images(rng, (5, 8, 8, 4)))
    kernel, bias = tf.Variable(random_images(rng, (3, 3, 4, 4))), tf.Variable(random_images(rng, (4,)))
    step = lambda conv: _values_and_gradients(conv, x, kernel, bias)  # noqa: E731
    ours = tf.function(lambda: step(lambda *a: winograd.conv_bias_relu(*a, "winograd2", chunk=2)), jit_compile=True)
    for a, b in zip(tf.nest.flatten(ours()), tf.nest.flatten(step(direct))):   # chunks of 2, 2 and 1
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-5 * np.abs(b).max())


def test_gradients_with_an_unknown_batch_size(rng):
    x = tf.constant(random_images(rng, (3, 10, 9, 4)))
    kernel, bias = tf.Variable(random_images(rng, (3, 3, 4, 5))), tf.Variable(random_images(rng, (5,)))

    @tf.function(input_signature=[tf.TensorSpec([None, 10, 9, 4])])
    def gradients(images):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(winograd.conv_bias_relu(images, kernel, bias, "winograd4")))
        return tape.gradient(loss, [kernel, bias])

    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(direct(x, kernel, bias)))
    for a, b in zip(gradients(x), tape.gradient(loss, [kernel, bias])):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=2e-5 * np.abs(b).max())


@pytest.mark.parametrize("m", [2, 4])
def test_the_winograd_ops_are_differentiable_themselves(rng, m):
    """winograd_conv2d's own automatic derivative, checked by TensorFlow's finite differences."""
    x = tf.constant(rng.normal(size=(1, 5, 6, 2)))
    kernel = tf.constant(rng.normal(size=(3, 3, 2, 3)))
    theoretical, numerical = tf.test.compute_gradient(lambda a, b: winograd.winograd_conv2d(a, b, m), [x, kernel])
    for t, n in zip(theoretical, numerical):
        np.testing.assert_allclose(t, n, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("algorithm", ["winograd2", "winograd4",
                                       pytest.param("winograd6", marks=pytest.mark.slow)])  # 13 layer compiles
def test_vgg16_logits_with_winograd_everywhere(rng, algorithm):
    images = random_images(rng, (2, 32, 32, 3))
    p = tfvgg.ParamStore(seed=3)
    reference = tfvgg.inference_op(images, p, config="D", num_classes=10)[2].numpy()
    logits = tfvgg.inference_op(images, p, config="D", num_classes=10, conv_algorithm=algorithm)[2].numpy()
    np.testing.assert_allclose(logits, reference, rtol=0, atol=1e-4 * np.abs(reference).max())


def test_auto_picks_winograd4_for_the_deep_vgg16_layers_only():
    shapes = {r.name: r for r in tfvgg.summary("D", (224, 224, 3), print_fn=None).rows}
    chosen = {}
    previous = (224, 224, 3)
    for name, row in shapes.items():
        if row.kind.startswith("conv"):
            chosen[name] = winograd.choose(3, 3, 1, 1, "SAME", previous[0], previous[1], previous[2],
                                           row.output_shape[2])
        if len(row.output_shape) == 3:
            previous = row.output_shape
    assert {n for n, a in chosen.items() if a == "winograd4"} == {
        "conv2_2", "conv3_1", "conv3_2", "conv3_3", "conv4_1", "conv4_2", "conv4_3"}
    assert set(chosen.values()) <= {"direct", "winograd4"}
    assert winograd.choose(3, 3, 1, 1, "SAME", 14, 14, 512, 512) == "direct"
    assert winograd.choose(3, 3, 1, 1, "SAME", 14, 14, 512, 512, pretransformed=True) == "winograd4"
    assert winograd.choose(3, 3, 1, 1, "SAME", 56, 56, 128, 256) == "winograd4"
    assert winograd.choose(3, 3, 1, 1, "SAME", 112, 112, 64, 128) == "direct"
    assert winograd.choose(3, 3, 1, 1, "SAME", 112, 112, 128, 128, pretransformed=True) == "winograd4"
    assert winograd.choose(5, 5, 1, 1, "SAME", 28, 28, 512, 512) == "direct"
    assert winograd.choose(3, 3, 2, 2, "SAME", 28, 28, 512, 512) == "direct"
    assert winograd.choose(3, 3, 1, 1, "SAME", 28, 28, 512, 512, tf.bfloat16) == "direct"


def test_auto_everywhere_builds_every_network(rng):
    for config, shape in (("alexnet", (64, 64, 3)), ("lenet", (28, 28, 1)), ("C", (32, 32, 3))):
        p = tfvgg.ParamStore()
        images = random_images(rng, (1, *shape))
        direct_logits = tfvgg.inference_op(images, p, config=config)[2].numpy()
        auto_logits = tfvgg.inference_op(images, p, config=config, conv_algorithm="auto")[2].numpy()
        np.testing.assert_allclose(auto_logits, direct_logits, rtol=0, atol=1e-4 * np.abs(direct_logits).max())


def test_errors_name_the_layer(rng):
    p = tfvgg.ParamStore()
    with pytest.raises(ValueError, match="conv1: winograd4 computes 3x3 stride-1 SAME convolutions only; this "
                                         "layer is 5x5 stride 1x1 SAME"):
        tfvgg.conv_op(tf.zeros([1, 8, 8, 1]), "conv1", 5, 5, 4, 1, 1, p, algorithm="winograd4")
    with pytest.raises(ValueError, match="conv2: winograd4 in bfloat16 loses 10% or more"):
        tfvgg.conv_op(tf.zeros([1, 8, 8, 1], tf.bfloat16), "conv2", 3, 3, 4, 1, 1, p, algorithm="winograd4")
    with pytest.raises(ValueError, match="algorithm must be one of direct, winograd2, winograd4, winograd6, auto"):
        tfvgg.conv_op(tf.zeros([1, 8, 8, 1]), "conv3", 3, 3, 4, 1, 1, p, algorithm="fft")
    y = tfvgg.conv_op(tf.zeros([1, 8, 8, 1], tf.bfloat16), "conv4", 3, 3, 4, 1, 1, p, algorithm="winograd2")
    assert y.dtype == tf.bfloat16


def test_filters_transformed_once_give_the_same_logits(rng):
    images = random_images(rng, (2, 32, 32, 3))
    p = tfvgg.ParamStore(seed=5)
    per_call = tfvgg.inference_op(images, p, config="D", num_classes=10, conv_algorithm="winograd4")[2].numpy()
    q = p.inference_copy(winograd=["winograd4"])
    assert q.transformed_filters("conv3_1", "winograd4").shape == (36, 128, 256)
    assert q.transformed_filters("conv3_1", "winograd2") is None and q.names == p.names
    cached = tfvgg.inference_op(images, q, config="D", conv_algorithm="winograd4")[2].numpy()
    np.testing.assert_allclose(cached, per_call, rtol=0, atol=1e-5 * np.abs(per_call).max())


def test_auto_leaves_gpus_to_cudnn(monkeypatch):
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: ["/physical_device:GPU:0"] if kind == "GPU" else [])
    assert winograd.choose(3, 3, 1, 1, "SAME", 28, 28, 512, 512) == "direct"


def test_inference_copy_keeps_per_layer_filters_only_where_asked(rng):
    p = tfvgg.ParamStore(seed=5)
    tfvgg.inference_op(random_images(rng, (1, 32, 32, 3)), p, config="A", num_classes=10)
    q = p.inference_copy(winograd={"conv3_1": "winograd6", "conv4_2": "winograd2"})
    assert q.for_inference and not p.for_inference
    assert q.transformed_filters("conv3_1", "winograd6").shape == (64, 128, 256)
    assert q.transformed_filters("conv4_2", "winograd2").shape == (16, 512, 512)
    assert q.transformed_filters("conv3_1", "winograd2") is None
    assert q.transformed_filters("conv1_1", "winograd6") is None
