"""The benchmark's measuring helpers: interleaved timing (``tfvgg.timing``, re-exported), the device's
matmul peak and peak memory."""
import math
import resource
import sys
import time

import tensorflow as tf

from tfvgg.timing import Timing, time_contestants  # noqa: F401 - the benchmarks' timing is the library's


def matmul_peak_flops(dtype=tf.float32, n=4096, repeats=5, device=None, clock=time.perf_counter):
    """Best FLOP/s of an n x n x n ``tf.matmul`` in ``dtype``: the device's practical peak.

    2 n^3 FLOPs per product; the inputs are created once on the device, one
    untimed call compiles and warms up.
    """
    with tf.device(device):
        a = tf.Variable(tf.cast(tf.random.stateless_normal((n, n), seed=(1, 2)), dtype))
        b = tf.Variable(tf.cast(tf.random.stateless_normal((n, n), seed=(3, 4)), dtype))

        @tf.function
        def product():
            # A sum reads every element (a slice could let a compiler skip work); n^2 adds are noise.
            return tf.reduce_sum(tf.cast(tf.matmul(a, b), tf.float32))

        product().numpy()
        best = math.inf
        for _ in range(repeats):
            t0 = clock()
            product().numpy()
            best = min(best, clock() - t0)
    return 2.0 * n ** 3 / best


def peak_memory_bytes(device_name):
    """(bytes, what) of peak memory: the device allocator's peak on GPU, else the process' peak RSS."""
    if device_name.upper().startswith("GPU"):
        try:
            return tf.config.experimental.get_memory_info(device_name)["peak"], "device peak"
        except (ValueError, tf.errors.OpError):
            pass
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return (max_rss if sys.platform == "darwin" else max_rss * 1024), "process peak RSS"


def reset_peak_memory(device_name):
    """Start a new peak for ``peak_memory_bytes`` where the device allows it (GPU only)."""
    if device_name.upper().startswith("GPU"):
        try:
            tf.config.experimental.reset_memory_stats(device_name)
        except (ValueError, tf.errors.OpError):
            pass
