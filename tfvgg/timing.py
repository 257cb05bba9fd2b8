"""Interleaved timing of callables: warm-up, timed batches, honest statistics.

The one timing path of tfvgg: the autotuner times convolution candidates with it
and the benchmarks time whole networks with it.

    from tfvgg import timing
    stats = timing.time_contestants({"mine": lambda: step().numpy()}, num_batches=20)["mine"]
    print(stats.describe())

A contestant is a callable that runs one batch and returns only when the
device has finished (fetch a small result with ``.numpy()``).
"""
import math
import statistics
import time
from dataclasses import dataclass, field


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
