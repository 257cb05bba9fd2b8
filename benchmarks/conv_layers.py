"""Per-layer convolution kernels, timed alone: ``python -m benchmarks.conv_layers --batch_size=8``.

For each distinct convolution shape of a network: the forward kernel, the input
gradient and the weight gradient, in GFLOP/s (2 x multiply-adds / best time).
Shows which kernel holds a whole-network pass back.
"""
import dataclasses
import sys
import time

from absl import flags
import tensorflow as tf

import tfvgg
from tfvgg import autotune, winograd
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


def main(argv):
    cli.no_positional_arguments(argv)
    tf.get_logger().setLevel("ERROR")  # one tf.function per kernel is intended; no retracing warnings
    net = tfvgg.get_network(FLAGS.model)
    image_size = FLAGS.image_size or net.input_shape[0]
    dtype = compute_dtype(FLAGS.precision)
    shapes = conv_shapes(net.name, image_size, net.input_shape[2])
    if FLAGS.algorithms:
        print_algorithm_table(shapes, FLAGS.batch_size, dtype, FLAGS.algorithms, FLAGS.repeats,
                              progress_fn=lambda line: print(line, file=sys.stderr, flush=True))
        return
    print(f"{net.description}: batch {FLAGS.batch_size}, {FLAGS.precision}, GFLOP/s (best of {FLAGS.repeats})")
    print(f"{'input HxW':>10} {'C_in':>5} {'C_out':>5} {'k':>2} {'forward':>8} {'input grad':>10} {'weight grad':>11}")
    for h, w, c_in, c_out, k in shapes:
        r = time_layer(FLAGS.batch_size, h, w, c_in, c_out, k, dtype, FLAGS.repeats)
        print(f"{f'{h}x{w}':>10} {c_in:>5} {c_out:>5} {k:>2} {r['forward']:>8.0f} {r['input_gradient']:>10.0f} "
              f"{r['weight_gradient']:>11.0f}")
        sys.stdout.flush()


def print_algorithm_table(shapes, batch, dtype, algorithms, repeats, print_fn=print, progress_fn=None):
    """Per 3x3 layer and pass, ms of each algorithm (at the chunk size the tuner's first round gives it,
    ``as_tuned``) and of auto's pick, timed in one run; a pick that is one of them is timed once, as that one.

    auto's pick comes from the tuning cache (tuned now if missing), or from the fixed rule where tuning is off;
    "best" is the fastest in this table, so "auto/best" shows how far the pick is from it on this run.
    """
    rows = table_rows(shapes, batch, dtype, algorithms)
    seconds = time_table(rows, repeats, progress_fn)
    print_fn(f"relu(conv3x3 + bias), batch {batch}, {tf.as_dtype(dtype).name}: ms, best of {repeats} sweeps over "
             "the table; speed-ups vs direct; inference = filters transformed once, training = forward + "
             "gradients; auto/best = best ms / auto's ms")
    for (workload, names, pick), times in zip(rows, seconds):
        w = workload
        cells = " | ".join(f"{a} {times[a] * 1e3:.1f} ({times['direct'] / times[a]:.2f}x)"
                           for a in names if a in times)
        best = min(times.values())
        print_fn(f"{f'{w.height}x{w.width}':>8} {w.c_in:>4}->{w.c_out:<4} {w.pass_name:<9} {cells} | auto: {pick} "
                 f"{times[pick] * 1e3:.1f} ({times['direct'] / times[pick]:.2f}x, auto/best "
                 f"{best / times[pick]:.2f})")


def table_rows(shapes, batch, dtype, algorithms):
    """``[(workload, candidate names, auto's pick)]``: a row per 3x3 layer shape and pass; the pick is timed as
    one of the candidates if it is one."""
    algorithms = ["direct"] + [a for a in algorithms if a != "direct"]
    rows = []
    for h, w, c_in, c_out, k in shapes:
        if k != 3:
            continue
        for pass_name in autotune.PASSES:
            workload = autotune.Workload(h, w, c_in, c_out, batch, tf.as_dtype(dtype).name, "NHWC", pass_name)
            pick = autotune.choose(workload, autotune.fallback_rule(workload)).name
            names = [as_tuned(workload, a) for a in algorithms if _allowed(a, dtype)]
            rows.append((workload, names, pick))
    return rows


def time_table(rows, sweeps, progress_fn=None):
    """Best seconds per row and candidate (``[{name: seconds}]``) by the autotuner's timing path: ``sweeps``
    passes over the whole table, each timing every row's candidates once, side by side (the first builds them);
    a candidate that lost as the tuner's timing drops one (``autotune.drop_ratio``) keeps its time so far.

    A cell's runs lie a sweep apart (minutes at batch 32), not a second: on a shared machine a slow spell lasts
    seconds and slows the memory-bound Winograd transforms more than direct convolution (measured on a Zen 4:
    F(6x6) at 307 ms against 179 ms in a quiet process, direct 276 against 264), and three runs in a row can all
    fall in it.
    """
    prepared = [{} for _ in rows]
    best = [{} for _ in rows]
    start = time.perf_counter()
    for sweep in range(sweeps):
        for (workload, names, pick), built, times in zip(rows, prepared, best):
            order = [n for n in names + ([pick] if pick not in names else [])   # a clear loser runs no more
                     if n not in times or times[n] <= autotune.drop_ratio(sweep) * min(times.values())]
            order = order[sweep % len(order):] + order[:sweep % len(order)]   # each candidate first in turn
            measured = autotune.time_choices(workload, [autotune.Choice.parse(n) for n in order], repeats=1,
                                             prepared=built, budget_rounds=1)
            for name, t in measured.items():
                times[name] = min(t, times.get(name, float("inf")))
        if progress_fn:
            progress_fn(f"  sweep {sweep + 1}/{sweeps} over {len(rows)} rows: {time.perf_counter() - start:.0f} s")
    return best


def as_tuned(workload, name):
    """``name`` as the tuner's first round times it: a Winograd algorithm without a chunk size gets the rule's,
    rounded down to a divisor of the batch and within training's memory limit (``autotune.candidate_algorithms``).
    Timed twice under two names, one computation differed by up to 6% on a noisy machine: noise, not a choice."""
    choice = autotune.Choice.parse(name)
    if choice.algorithm == "direct" or choice.chunk is not None:
        return name
    rule = {candidate.algorithm: candidate.chunk for candidate in autotune.candidate_algorithms(workload)}
    return dataclasses.replace(choice, chunk=rule[choice.algorithm]).name


def _allowed(algorithm, dtype):
    try:
        winograd.check_precision(autotune.Choice.parse(algorithm).algorithm, dtype)
        return True
    except ValueError:
        return False


def define_flags():
    cli.MODEL.define("model", "D")
    cli.BATCH_SIZE.define("batch_size", 8)
    cli.IMAGE_SIZE.define("image_size", None)
    cli.PRECISION.define("precision", "fp32")
    cli.FlagSpec("integer", "Timed runs per kernel (the best counts); with --algorithms, one per sweep over the "
                 "whole table, so that a cell's runs lie minutes apart.", lower=1).define("repeats", 5)
    in_xla = tuple(a + autotune.XLA_SUFFIX for a in winograd.ALGORITHMS)
    cli.FlagSpec("list", "Instead: time relu(conv + bias) with these algorithms against direct and auto's pick "
                 "(winograd2, winograd4, winograd6: products and output contraction as TensorFlow matmuls; with "
                 "+xla, the forward pass in one XLA function).", tuple(winograd.ALGORITHMS) + in_xla
                 ).define("algorithms", [])


def run():
    """``tfvgg-conv-layers``: the console script."""
    cli.run(main, define_flags)


if __name__ == "__main__":
    run()
