"""Timing helpers for any TensorFlow callable: warm-up, timed batches, honest statistics.

Usable on its own for a user's graph:

    from benchmarks import timing
    stats = timing.time_contestants({"mine": lambda: step().numpy()}, num_batches=20)["mine"]
    print(stats.describe())

A contestant is a callable that runs one batch and returns only when the
device has finished (fetch a small result with ``.numpy()``).
"""
import math
import resource
import statistics
import sys
import time
from dataclasses import dataclass, field

import tensorflow as tf


@dataclass
class Timing:
    """Seconds per batch of one contestant: every timed batch kept, statistics derived."""
    durations: list = field(default_factory=list)

    @property
    def count(self):
        return len(self.durations)

    @property
    def mean(self):
        return math.fsum(self.durations) / self.count

    @property
    def sd(self):
        """Sample standard deviation (n - 1), by two passes: never negative, no catastrophic cancellation."""
        if self.count < 2:
            return 0.0
        m = self.mean
        return math.sqrt(math.fsum((d - m) ** 2 for d in self.durations) / (self.count - 1))

    @property
    def best(self):
        return min(self.durations)

    @property
    def median(self):
        return statistics.median(self.durations)

    def describe(self, info=""):
        prefix = f"{info} across {self.count} steps, " if info else ""
        return f"{prefix}{self.mean:.3f} +/- {self.sd:.3f} sec / batch"


def time_contestants(contestants, num_batches, num_warmup_batches=0, *, clock=time.perf_counter,
                     log_every=10, print_fn=print, label=""):
    """Run each contestant's batches interleaved (A B C, B C A, C A B, ...), timing each batch.

    Interleaving makes the machine's noise (other processes, frequency changes)
    land on every contestant alike, so their ratio means something.
    Every one of the ``num_batches`` timed batches counts (the classic script's
    ``i > burn_in`` dropped one). Warm-up batches (tracing, allocation, autotuning)
    are run first and not timed.

    Returns ``{name: Timing}``.
    """
    if num_batches < 1:
        raise ValueError(f"num_batches must be >= 1; got {num_batches}")
    for _ in range(num_warmup_batches):
        for run in contestants.values():
            run()
    results = {name: Timing() for name in contestants}
    names = list(contestants)
    start = clock()
    for step in range(1, num_batches + 1):
        # Rotate who goes first, so no contestant always runs right after the same other one.
        shift = (step - 1) % len(names)
        for name in names[shift:] + names[:shift]:
            t0 = clock()
            contestants[name]()
            results[name].durations.append(clock() - t0)
        if print_fn is not None and log_every and (step % log_every == 0 or step == num_batches):
            elapsed = clock() - start
            eta = elapsed / step * (num_batches - step)
            latest = ", ".join(f"{n} {r.durations[-1]:.3f} s" for n, r in results.items())
            print_fn(f"{label}step {step}/{num_batches}: {latest}; elapsed {elapsed:.1f} s, ETA {eta:.1f} s")
    return results


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
