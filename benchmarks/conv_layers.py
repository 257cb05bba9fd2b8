"""Per-layer convolution kernels, timed alone: ``python -m benchmarks.conv_layers --batch_size=8``.

For each distinct convolution shape of a network: the forward kernel, the input
gradient and the weight gradient, in GFLOP/s (2 x multiply-adds / best time).
Shows which kernel holds a whole-network pass back.
"""
import sys

from absl import flags
import tensorflow as tf

import tfvgg
from tfvgg import winograd
from tfvgg import cli
from benchmarks import timing
from tfvgg.precision import compute_dtype

FLAGS = flags.FLAGS


def conv_shapes(model, image_size, channels):
    """Distinct (H, W, C_in, C_out, kernel) of the stride-1 convolutions, in network order."""
    rows = tfvgg.summary(model, (image_size, image_size, channels), print_fn=None).rows
    layers = {l.name: l for l in tfvgg.get_network(model).layers}
    shapes, c_in = [], channels
    previous_hw = (image_size, image_size)
    for row in rows:
        layer = layers[row.name]
        if isinstance(layer, tfvgg.Conv) and layer.stride == 1:
            shape = (*previous_hw, c_in, layer.channels, layer.kernel)
            if shape not in shapes:
                shapes.append(shape)
        if len(row.output_shape) == 3:
            previous_hw, c_in = row.output_shape[:2], row.output_shape[2]
    return shapes


def time_layer(batch, h, w, c_in, c_out, k, dtype, repeats=5):
    """GFLOP/s of (forward, input gradient, weight gradient) for one SAME convolution."""
    x = tf.Variable(tf.cast(tf.random.stateless_normal([batch, h, w, c_in], seed=(0, 1)), dtype))
    kernel = tf.Variable(tf.cast(tf.random.stateless_normal([k, k, c_in, c_out], seed=(0, 2)) * 0.01, dtype))
    dy = tf.Variable(tf.cast(tf.random.stateless_normal([batch, h, w, c_out], seed=(0, 3)), dtype))
    kernels = {
        "forward": lambda: tf.nn.conv2d(x, kernel, 1, "SAME"),
        "input_gradient": lambda: tf.raw_ops.Conv2DBackpropInput(
            input_sizes=[batch, h, w, c_in], filter=kernel, out_backprop=dy, strides=[1, 1, 1, 1], padding="SAME"),
        "weight_gradient": lambda: tf.raw_ops.Conv2DBackpropFilter(
            input=x, filter_sizes=[k, k, c_in, c_out], out_backprop=dy, strides=[1, 1, 1, 1], padding="SAME"),
    }
    flops = 2.0 * batch * h * w * k * k * c_in * c_out
    rates = {}
    for name, kernel_fn in kernels.items():
        fn = tf.function(lambda f=kernel_fn: tf.reduce_sum(tf.cast(f(), tf.float32)))
        run = lambda: fn().numpy()  # noqa: E731
        best = timing.time_contestants({name: run}, repeats, 2, print_fn=None)[name].best
        rates[name] = flops / best / 1e9
    return rates


def time_algorithms(batch, h, w, c_in, c_out, dtype, algorithms, repeats=5):
    """Best seconds of relu(conv3x3 + bias) per algorithm: ``{algorithm: (forward, forward_backward, inference)}``.

    forward_backward includes the gradients with respect to the input, the kernel and the bias; inference is the
    forward pass from filters transformed in advance (``ParamStore.inference_copy``; for direct, the forward again).
    Algorithms are interleaved batch by batch, so noise hits them alike.
    """
    x = tf.Variable(tf.cast(tf.random.stateless_normal([batch, h, w, c_in], seed=(0, 1)), dtype))
    kernel = tf.Variable(tf.cast(tf.random.stateless_normal([3, 3, c_in, c_out], seed=(0, 2)) * 0.05, dtype))
    bias = tf.Variable(tf.zeros([c_out], dtype))
    transformed = {a: tf.Variable(winograd.transform_filters(kernel, m)) for a, m in winograd.ALGORITHMS.items()
                   if a in algorithms}

    def layer(algorithm, pretransformed=False):
        if algorithm == "direct":
            return tf.nn.relu(tf.nn.conv2d(x, kernel, 1, "SAME") + bias)
        return winograd.conv_bias_relu(x, kernel, bias, algorithm,
                                       transformed_kernel=transformed[algorithm] if pretransformed else None)

    def forward_backward(algorithm):
        with tf.GradientTape() as tape:
            y = tf.reduce_sum(tf.cast(layer(algorithm), tf.float32))
        grads = tape.gradient(y, [x, kernel, bias])
        return tf.add_n([tf.reduce_sum(tf.cast(g, tf.float32)) for g in grads])

    runs = {}
    for algorithm in algorithms:
        fwd = tf.function(lambda a=algorithm: tf.reduce_sum(tf.cast(layer(a), tf.float32)))
        fb = tf.function(lambda a=algorithm: forward_backward(a))
        runs[(algorithm, "forward")] = lambda f=fwd: f().numpy()
        runs[(algorithm, "forward_backward")] = lambda f=fb: f().numpy()
        if algorithm != "direct":
            inference = tf.function(lambda a=algorithm: tf.reduce_sum(tf.cast(layer(a, True), tf.float32)))
            runs[(algorithm, "inference")] = lambda f=inference: f().numpy()
    best = {k: t.best for k, t in timing.time_contestants(runs, repeats, 1, print_fn=None).items()}
    return {a: (best[(a, "forward")], best[(a, "forward_backward")], best.get((a, "inference"), best[(a, "forward")]))
            for a in algorithms}


def main(argv):
    cli.no_positional_arguments(argv)
    tf.get_logger().setLevel("ERROR")  # one tf.function per kernel is intended; no retracing warnings
    net = tfvgg.get_network(FLAGS.model)
    image_size = FLAGS.image_size or net.input_shape[0]
    dtype = compute_dtype(FLAGS.precision)
    shapes = conv_shapes(net.name, image_size, net.input_shape[2])
    if FLAGS.algorithms:
        print_algorithm_table(shapes, FLAGS.batch_size, dtype, FLAGS.algorithms, FLAGS.repeats)
        return
    print(f"{net.description}: batch {FLAGS.batch_size}, {FLAGS.precision}, GFLOP/s (best of {FLAGS.repeats})")
    print(f"{'input HxW':>10} {'C_in':>5} {'C_out':>5} {'k':>2} {'forward':>8} {'input grad':>10} {'weight grad':>11}")
    for h, w, c_in, c_out, k in shapes:
        r = time_layer(FLAGS.batch_size, h, w, c_in, c_out, k, dtype, FLAGS.repeats)
        print(f"{f'{h}x{w}':>10} {c_in:>5} {c_out:>5} {k:>2} {r['forward']:>8.0f} {r['input_gradient']:>10.0f} "
              f"{r['weight_gradient']:>11.0f}")
        sys.stdout.flush()


def print_algorithm_table(shapes, batch, dtype, algorithms, repeats, print_fn=print):
    """Milliseconds per layer (forward; forward-backward; inference) of each algorithm, and the speed-up over direct."""
    algorithms = ["direct"] + [a for a in algorithms if a != "direct"]
    if dtype != tf.float32:   # F(4x4) is refused in 16-bit types (see winograd.check_precision)
        algorithms = [a for a in algorithms if a != "winograd4"]
    print_fn(f"relu(conv3x3 + bias), batch {batch}, {dtype.name}: ms forward / forward-backward / inference "
             f"(filters transformed once) and speed-ups vs direct, best of {repeats}; * = auto's choice for "
             "training, + = for inference")
    for h, w, c_in, c_out, k in shapes:
        if k != 3:
            continue
        t = time_algorithms(batch, h, w, c_in, c_out, dtype, algorithms, repeats)
        training = winograd.choose(3, 3, 1, 1, "SAME", h, w, c_in, c_out, dtype)
        inference = winograd.choose(3, 3, 1, 1, "SAME", h, w, c_in, c_out, dtype, pretransformed=True)
        cells = []
        for a in algorithms:
            mark = ("*" if a == training else "") + ("+" if a == inference else "")
            times = " / ".join(f"{s * 1e3:.1f}" for s in t[a])
            ratios = " / ".join(f"{d / s:.2f}x" for d, s in zip(t["direct"], t[a]))
            cells.append(f"{a}{mark:<2} {times} ({ratios})")
        print_fn(f"{f'{h}x{w}':>8} {c_in:>4}->{c_out:<4} " + " | ".join(cells))


def define_flags():
    cli.MODEL.define("model", "D")
    cli.BATCH_SIZE.define("batch_size", 8)
    cli.IMAGE_SIZE.define("image_size", None)
    cli.PRECISION.define("precision", "fp32")
    cli.FlagSpec("integer", "Timed runs per kernel (the best counts).", lower=1).define("repeats", 5)
    cli.FlagSpec("list", "Instead: time relu(conv + bias) with these algorithms against direct (winograd2, "
                 "winograd4).", ("winograd2", "winograd4")).define("algorithms", [])


def run():
    """``tfvgg-conv-layers``: the console script."""
    cli.run(main, define_flags)


if __name__ == "__main__":
    run()
