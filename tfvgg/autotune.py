"""Measured convolution choices: each layer's workload timed once on this machine, the winner kept on disk.

What cuDNN's autotuner and TVM's tuning logs do, for tfvgg's ``conv_algorithm="auto"``.
A ``Workload`` is one convolution's exact job (input H x W, channels in and out,
batch, dtype, layout, pass); its candidates are direct (``tf.nn.conv2d``) and each
Winograd F(m x m, 3 x 3) with the batch split into chunks of several sizes. They
are timed interleaved (``tfvgg.timing``), best of a few runs each, and the fastest
is stored in a JSON cache under a fingerprint of the machine (CPU model and ISA
flags, usable cores, oneDNN and its ISA cap, thread settings, TensorFlow and tfvgg
versions, the Winograd kernels' source). Later builds, in this process or another,
read the cache. A corrupt or foreign cache is ignored with one warning.

Environment: ``TFVGG_AUTOTUNE=0`` turns tuning off (``winograd.choose``'s fixed
rule decides, as on GPUs, where cuDNN tunes its own); ``TFVGG_AUTOTUNE_CACHE``
is the cache file (default ``~/.cache/tfvgg/autotune-<fingerprint>.json``, or
under ``$XDG_CACHE_HOME``). In code: ``set_enabled(False)``.
"""
import concurrent.futures
import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import platform
import threading
import time
import warnings

import tensorflow as tf

from tfvgg import timing, winograd
from tfvgg.util import write_json

ENV_ENABLE, ENV_CACHE = "TFVGG_AUTOTUNE", "TFVGG_AUTOTUNE_CACHE"
CACHE_FORMAT = "tfvgg-autotune-2"   # 2: a name without "+xla" runs its products apart
PASSES = ("inference", "training")   # forward from filters transformed once; forward + backward
REPEATS, WARMUP = 5, 1               # timed runs per candidate (the best counts), untimed runs first (compiles)
MIN_REPEATS = 2                      # timed runs before a clear leader may end the timing early
DROP_RATIO = 1.5                     # a candidate this much slower than the best so far is timed no more
SPELL_RATIO = 1.8                    # ... after one run: x this (a slow spell of a shared machine; time_choices)
CLOSE_RATIO = 1.25                   # Winograd within this of the best is tried further (products, chunk sizes;
                                     # the other kind within it of a pick gets a second look)
TIE_RATIO = 1.03                     # candidates this close are near equals: more runs or sizes would not pay
ROUNDS_BUDGET = 2.5                  # seconds of timed runs per measurement, past which MIN_REPEATS rounds do
SCREEN_BATCH = 8                     # a larger batch is first searched on this many images (_screened_rounds)
SCREEN_KEEP = 1.10                   # ... and candidates within this of the winner there are its finalists (and a
                                     # Winograd algorithm within it of the one whose chunks climb runs beside it)
NEAR_RATIO = 1.05                    # ... and those within this of it there run on the full batch too (a
                                     # second look's rival must beat the pick by more than this)
SHIFT_RATIO = 1.15                   # a round (or the full batch) turning an earlier order by more than this: again
PRUNE_RATIO = 1.5                    # training tries Winograd algorithms within this of inference's fastest one
TRAINING_GIVE_UP = 3.0               # ... unless that one ran this many times direct's inference time
XLA_SUFFIX = "+xla"                   # a Choice name's mark for products="xla" (the default is "matmul")
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8")
# Environment that changes the kernels' speed on the same CPU: oneDNN's instruction-set cap (measured on a Zen 4:
# a 56x56 256->256 convolution 1.16x slower at ONEDNN_MAX_CPU_ISA=AVX2) and the thread pools' sizes.
SPEED_SETTINGS = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS",
                  "OMP_NUM_THREADS")
_ENABLED = [None]   # None: from the environment


_MEASURING = [True]  # False after a tuning budget ran out: cached choices still count, nothing new is measured


def set_enabled(enabled):
    """Turn measured tuning on or off for this process (None: back to ``TFVGG_AUTOTUNE``)."""
    _ENABLED[0] = None if enabled is None else bool(enabled)


def enabled():
    if _ENABLED[0] is not None:
        return _ENABLED[0]
    return os.environ.get(ENV_ENABLE, "1").strip().lower() not in ("0", "false", "off", "no")


def set_measuring(measuring):
    """With False, ``choose`` reads the cache but measures nothing new (the rule decides a miss)."""
    _MEASURING[0] = bool(measuring)


@dataclasses.dataclass(frozen=True)
class Workload:
    """One convolution's job: NHWC/NCHW input ``[batch, height, width, c_in]`` -> ``c_out`` channels, 3x3 SAME."""
    height: int
    width: int
    c_in: int
    c_out: int
    batch: int
    dtype: str = "float32"
    data_format: str = "NHWC"
    pass_name: str = "training"

    def key(self):
        return (f"{self.height}x{self.width} {self.c_in}->{self.c_out} batch {self.batch} {self.dtype} "
                f"{self.data_format} {self.pass_name}")


@dataclasses.dataclass(frozen=True)
class Choice:
    """An algorithm; for Winograd the images per call (None: ``winograd.chunk_sizes``'s rule) and where the forward
    pass's products run (``winograd.PRODUCTS``: "matmul" apart from the transforms, or "xla" with them)."""
    algorithm: str
    chunk: int = None
    products: str = winograd.DEFAULT_PRODUCTS

    @property
    def name(self):
        name = self.algorithm if self.chunk is None else f"{self.algorithm}/{self.chunk}"
        return name + XLA_SUFFIX if self.products == "xla" else name

    @property
    def kernels(self):
        """``(algorithm, products)``: what runs per chunk of images, the same whatever the chunk size."""
        return self.algorithm, self.products

    @classmethod
    def parse(cls, name):
        """``"winograd4/2"`` -> ``Choice("winograd4", 2)``, ``"winograd4/2+xla"`` -> ``Choice("winograd4", 2,
        "xla")``; ValueError for anything else."""
        base, xla = (name[:-len(XLA_SUFFIX)], True) if name.endswith(XLA_SUFFIX) else (name, False)
        algorithm, _, chunk = base.partition("/")
        valid_chunk = chunk == "" or (chunk.isdigit() and int(chunk) > 0)
        known = algorithm in winograd.ALGORITHMS or (algorithm == "direct" and not chunk and not xla)
        if not (known and valid_chunk):
            raise ValueError(f"unknown convolution choice {name!r}")
        return cls(algorithm, int(chunk) if chunk else None, "xla" if xla else "matmul")


def machine_fingerprint():
    """What a tuning result depends on besides the workload: the same on the same machine and software."""
    fingerprint = _read_fingerprint()
    return {**fingerprint, "isa": list(fingerprint["isa"])}   # a copy: the cached one stays as read


@functools.lru_cache(maxsize=None)   # read once per process: choose() runs for every layer a trace builds
def _read_fingerprint():
    import tfvgg   # the package's version; imported here, as tfvgg imports this module
    cpu, flags = platform.processor(), set()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name") and not cpu:
                    cpu = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return {"cpu": cpu or platform.machine(), "isa": [f for f in ISA_FLAGS if f in flags],
            "cores": usable_cores(), "onednn": _onednn_enabled(), "tensorflow": tf.__version__,
            "tfvgg": tfvgg.__version__, "kernels": _kernels_digest(),
            "settings": {name: os.environ[name] for name in SPEED_SETTINGS if os.environ.get(name)}}


def usable_cores():
    """Cores this process may run on (``taskset``, a container's cpuset), not all the machine has."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):   # not on Linux
        return os.cpu_count()


def _kernels_digest():
    """A digest of the Winograd kernels' source: timings of other kernel code (an edit within one tfvgg version,
    as in development) are not reused."""
    with open(winograd.__file__, "rb") as source:
        return hashlib.sha256(source.read()).hexdigest()[:12]


def _onednn_enabled():
    try:
        from tensorflow.python.util import _pywrap_util_port
        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        return None


def _fingerprint_digest():
    return hashlib.sha256(json.dumps(machine_fingerprint(), sort_keys=True).encode()).hexdigest()[:12]


def _cache_root():
    return os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "tfvgg")


def default_cache_path():
    if os.environ.get(ENV_CACHE):
        return os.path.expanduser(os.environ[ENV_CACHE])
    return os.path.join(_cache_root(), f"autotune-{_fingerprint_digest()}.json")


def use_persistent_xla_cache(directory=None):
    """Keep XLA's compiled kernels on disk (``--tf_xla_persistent_cache_directory``), so a later process loads
    what tuning or an earlier run compiled instead of compiling it again (measured: an F(6x6) layer's first call
    6.9 s -> 0.6 s). For command lines (``tfvgg.cli.run`` calls it before absl's ``app.run``, whose init
    callbacks include TensorFlow's, which lists the devices: XLA reads ``TF_XLA_FLAGS`` then); the library itself
    sets no variable.

    Default directory: ``xla-<machine fingerprint>`` beside the tuning cache, so kernels compiled for one CPU's
    instructions are never loaded on another. Returns the directory, or None if ``TF_XLA_FLAGS`` names one already.
    """
    current = os.environ.get("TF_XLA_FLAGS", "")
    if "tf_xla_persistent_cache_directory" in current:
        return None
    directory = directory or os.path.join(_cache_root(), f"xla-{_fingerprint_digest()}")
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError:
        return None   # no writable cache: compile every time, as without this
    os.environ["TF_XLA_FLAGS"] = f"{current} --tf_xla_persistent_cache_directory={directory}".strip()
    return directory


class Cache:
    """The tuning results of one machine fingerprint, in one JSON file: ``{"format", "machine", "entries"}``.

    ``entries[workload key]``: ``{"choice": name, "seconds": {candidate name: best seconds}, "tuning_seconds"}``.
    Written atomically after each new entry, merged with what other processes wrote meanwhile.
    """

    def __init__(self, path=None):
        self.path = path or default_cache_path()
        self.machine = machine_fingerprint()
        self.entries = self._read(warn=True)

    def _read(self, warn):
        try:
            with open(self.path) as f:
                data = json.load(f)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            return self._ignored(warn, f"unreadable ({type(e).__name__}: {e})")
        if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT or not isinstance(
                data.get("entries"), dict):
            return self._ignored(warn, f"not a {CACHE_FORMAT} file")
        if data.get("machine") != self.machine:
            return self._ignored(warn, "written on another machine or by other software versions")
        return {k: v for k, v in data["entries"].items() if _valid_entry(v)}

    def _ignored(self, warn, why):
        if warn:
            warnings.warn(f"tfvgg autotune: ignoring the cache {self.path}: {why}; tuning again", RuntimeWarning,
                          stacklevel=4)
        return {}

    def get(self, workload):
        return self.entries.get(workload.key())

    def largest_batch(self, workload):
        """The entry of ``workload``'s layer (same shape, dtype, layout and pass) tuned at the largest batch, or
        None: for a graph traced with an unknown batch size."""
        tuned = {}
        for key, entry in self.entries.items():
            batch = key.partition(" batch ")[2].partition(" ")[0]
            if batch.isdigit() and key == dataclasses.replace(workload, batch=int(batch)).key():
                tuned[int(batch)] = entry
        return tuned[max(tuned)] if tuned else None

    def put(self, workload, entry):
        merged = {**self._read(warn=False), **self.entries, workload.key(): entry}
        self.entries = merged
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            write_json(self.path, {"format": CACHE_FORMAT, "machine": self.machine, "entries": merged})
        except OSError as e:
            if not getattr(self, "_warned_write", False):
                self._warned_write = True
                warnings.warn(f"tfvgg autotune: cannot write the cache {self.path} ({e}); results kept in this "
                              "process only", RuntimeWarning, stacklevel=3)


def _valid_entry(entry):
    try:
        Choice.parse(entry["choice"])
        return isinstance(entry["seconds"], dict)
    except (TypeError, KeyError, ValueError):
        return False


_CACHES = {}


def current_cache():
    """This process's ``Cache`` for ``default_cache_path()``, read once."""
    path = default_cache_path()
    if path not in _CACHES:
        _CACHES[path] = Cache(path)
    return _CACHES[path]


def layer_inputs(workload):
    """(x, kernel, bias): fixed random variables of ``workload``'s shapes and dtype. ``x`` is uniform in [-1, 1):
    a 224x224x64 batch of 32 took 1.5-2.3 s to draw from a normal distribution while tuning (Zen 4), 0.26 s so."""
    w, dtype = workload, tf.as_dtype(workload.dtype)
    shape = (w.batch, w.height, w.width, w.c_in) if w.data_format == "NHWC" else (w.batch, w.c_in, w.height, w.width)
    x = tf.Variable(tf.cast(tf.random.stateless_uniform(shape, seed=(0, 1), minval=-1.0, maxval=1.0), dtype))
    kernel = tf.Variable(tf.cast(tf.random.stateless_normal([3, 3, w.c_in, w.c_out], seed=(0, 2)) * 0.05, dtype))
    return x, kernel, tf.Variable(tf.zeros([w.c_out], dtype))


def layer_run(workload, choice, pass_name=None, inputs=None):
    """A callable running ``relu(conv3x3(x) + bias)`` once for ``workload`` by ``choice``, returning when done.

    ``pass_name`` (default the workload's): "inference" (forward from filters transformed in advance), "training"
    (forward, then the gradients with respect to the input, the kernel and the bias) or "forward" (forward,
    filters transformed on every call). ``inputs``: ``layer_inputs(workload)`` (default: created here).
    """
    w, pass_name = workload, pass_name or workload.pass_name
    x, kernel, bias = inputs or layer_inputs(w)
    transformed = None
    if choice.algorithm != "direct" and pass_name == "inference":
        transformed = tf.Variable(winograd.transform_filters(kernel, winograd.ALGORITHMS[choice.algorithm]))

    def layer():
        if choice.algorithm == "direct":
            y = tf.nn.conv2d(x, kernel, 1, "SAME", data_format=w.data_format)
            return tf.nn.relu(tf.nn.bias_add(y, bias, data_format=w.data_format))
        return winograd.conv_bias_relu(x, kernel, bias, choice.algorithm, w.data_format, transformed, choice.chunk,
                                       choice.products)

    def training():
        with tf.GradientTape() as tape:
            y = tf.reduce_sum(tf.cast(layer(), tf.float32))
        return tf.add_n([tf.reduce_sum(tf.cast(g, tf.float32)) for g in tape.gradient(y, [x, kernel, bias])])

    fn = tf.function(training if pass_name == "training" else lambda: tf.reduce_sum(tf.cast(layer(), tf.float32)),
                     autograph=False)   # plain TensorFlow code: nothing for AutoGraph to convert
    return lambda: fn().numpy()


def time_choices(workload, choices, repeats=REPEATS, warmup=WARMUP, pass_name=None, prepared=None,
                 budget_rounds=MIN_REPEATS, drop=True):
    """Best seconds of each choice, interleaved: ``{choice name: seconds}``; a choice that fails to run is left out.

    ``prepared``: a dict kept between calls for one workload (``tune``'s rounds): the runs built (traced,
    compiled, warmed up) and the inputs they share, so a choice timed again is not built again.

    Up to ``repeats`` interleaved rounds of one run each. After a round, a candidate over ``DROP_RATIO`` x the
    best so far runs no more (F(2x2) on a 224x224 layer takes seconds: one timed run, not five); after its first
    run only if over ``SPELL_RATIO`` x that (a slow spell of a shared machine slowed F(6x6) 1.8x, 62.6 against
    34.7 ms, and ended within a round: the candidates timed before its end lost by 1.7x, in one run each), and from
    ``MIN_REPEATS`` rounds on the timing ends once each other candidate either lost clearly (the leader's slowest
    run beat its fastest) or is a near equal (its best within ``TIE_RATIO`` of the leader's): more runs would not
    change the order, or would only order near equals (at batch 32 a round of four candidates takes seconds), or
    once the timed runs took ``ROUNDS_BUDGET`` seconds (a 224x224 layer's training runs take 2 s each: two of
    each, not five), from ``budget_rounds`` rounds on (``tune`` passes 1 on a batch a screen ranked first: one
    round of three 224x224 training candidates at batch 32 took 6 s). ``drop=False``: nobody is dropped (a
    ``second_look``'s two contenders).
    """
    prepared = _prepare_runs(workload, choices, warmup, pass_name, {} if prepared is None else prepared)
    runs = {choice.name: prepared[choice] for choice in choices if prepared[choice] is not None}
    if not runs:
        return {}   # tune() names the workload
    samples = {name: [] for name in runs}
    for round_number in range(1, repeats + 1):
        for name, t in timing.time_contestants(runs, 1, 0, print_fn=None).items():
            samples[name] += t.durations
        best = {name: min(s) for name, s in samples.items()}
        leader = min(best, key=best.get)
        runs = {name: run for name, run in runs.items()
                if not drop or best[name] <= drop_ratio(round_number) * best[leader]}
        settled = all(max(samples[leader]) < best[name] or best[name] <= TIE_RATIO * best[leader]
                      for name in runs if name != leader)
        spent = sum(sum(s) for s in samples.values())
        if (round_number >= MIN_REPEATS and settled) or (round_number >= budget_rounds and spent >= ROUNDS_BUDGET):
            break
        runs = dict(list(runs.items())[1:] + list(runs.items())[:1])   # rotate who goes first
    return {name: min(s) for name, s in samples.items()}


def drop_ratio(timed_runs):
    """How far behind the best a candidate timed ``timed_runs`` times is timed no more: ``DROP_RATIO``, and
    ``SPELL_RATIO`` times that after one run (``time_choices``)."""
    return DROP_RATIO * (SPELL_RATIO if timed_runs < MIN_REPEATS else 1.0)


def _prepare_runs(workload, choices, warmup, pass_name, prepared):
    """``prepared`` with ``{choice: run callable, or None if it cannot run}`` for every choice, each new one
    traced, compiled and run ``warmup`` times, all reading the same inputs (``prepared["inputs"]``).

    Untimed, so the candidates are prepared side by side, one thread per core: XLA compiling them is most of
    what tuning costs, and one compilation keeps two cores only partly busy.
    """
    if "inputs" not in prepared:
        prepared["inputs"] = layer_inputs(workload)

    def prepare(choice):
        try:
            run = layer_run(workload, choice, pass_name, prepared["inputs"])
            for _ in range(warmup):
                run()
            return run
        except (tf.errors.OpError, ValueError, TypeError):
            return None   # e.g. no NCHW kernel on this CPU, or a precision the algorithm refuses

    new = _unique([choice for choice in choices if choice not in prepared])
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(len(new), usable_cores()))) as pool:
        prepared.update(zip(new, pool.map(prepare, new)))
    return prepared


def candidate_algorithms(workload):
    """direct, and every Winograd algorithm this dtype allows, its batch split by ``winograd.chunk_sizes``'s rule."""
    out = [Choice("direct")]
    for algorithm in winograd.ALGORITHMS:
        try:
            winograd.check_precision(algorithm, workload.dtype)
        except ValueError:
            continue
        out.append(Choice(algorithm, _rule_chunk(workload, algorithm)))
    return out


def _rule_chunk(workload, algorithm):
    """The rule's images per call, rounded down to a divisor of the batch: a remainder chunk is another shape, so
    another XLA compilation (3 of 8 images, as [3, 3, 2], took F(6x6) training 9.7 s to compile instead of 2)."""
    w = workload
    shape = (w.batch, w.height, w.width, w.c_in)
    sizes = winograd.chunk_sizes(shape, w.c_out, winograd.ALGORITHMS[algorithm], itemsize=tf.as_dtype(w.dtype).size)
    rule = sizes[0] if sizes else w.batch
    return _largest_divisor(w.batch, min(rule, _chunk_limit(w, algorithm)))


def _chunk_limit(workload, algorithm):
    """The most images per call tuning may try: the batch for inference, ``winograd.training_chunk_limit`` for
    training (its scratch adds to every activation the backward pass still holds)."""
    w = workload
    if w.pass_name != "training":
        return w.batch
    return winograd.training_chunk_limit(w.batch, w.height, w.width, w.c_in, w.c_out, winograd.ALGORITHMS[algorithm])


def _largest_divisor(batch, at_most):
    return max(d for d in range(1, at_most + 1) if batch % d == 0)


def tune(workload, measure=None, inference_entry=None, prepared=None):
    """Time ``workload``'s candidates; returns the cache entry ``{"choice", "seconds", "tuning_seconds"}``, and for
    a batch over ``SCREEN_BATCH`` images ``"screen": {"batch", "seconds"}`` (the search on that many images).

    Every algorithm with the rule's chunking, then the fastest Winograd algorithm (if within ``CLOSE_RATIO`` of
    the best) with other chunk sizes, found by a hill-climb (``_climb_chunks``). For training, ``inference_entry``
    (the same layer's inference entry) prunes the candidates instead (``_pruned_by_inference``). A larger batch
    is searched on ``SCREEN_BATCH`` images and only the close finalists run on the full batch
    (``_screened_rounds``). ``measure(workload, choices)`` -> ``{name: seconds}``; default ``time_choices``, each
    workload's rounds sharing the candidates they built (tests pass made-up timings), kept in ``prepared``
    (``{Workload: time_choices' prepared}``, per batch size) if given. ``"seconds"`` holds the full batch's
    timings only (empty if the search on fewer images left one finalist).
    """
    start, prepared = time.perf_counter(), {} if prepared is None else prepared
    if measure is None:   # the rounds share what they built, per batch size
        def measure(w, choices):
            return time_choices(w, choices, prepared=prepared.setdefault(w, {}),
                                budget_rounds=1 if w.batch > SCREEN_BATCH else MIN_REPEATS)
    candidates, pruned = candidate_algorithms(workload), inference_entry is not None
    if pruned:
        candidates = _pruned_by_inference(workload, candidates, inference_entry)
    if len(candidates) == 1:   # nothing to decide (224x224 3->64 training: Winograd over 3x direct in inference)
        return {"choice": candidates[0].name, "seconds": {}, "tuning_seconds": round(time.perf_counter() - start, 3)}
    with _quiet_retracing():
        if workload.batch > SCREEN_BATCH:
            seconds, final_round, screen = _screened_rounds(workload, measure, candidates, pruned)
        else:
            (seconds, final_round), screen = _rounds(workload, measure, candidates, pruned), None
    entry = {"choice": min(final_round, key=final_round.get), "seconds": seconds}
    if screen:
        entry["screen"] = screen
    return {**entry, "tuning_seconds": round(time.perf_counter() - start, 3)}


def _screened_rounds(workload, measure, candidates, pruned):
    """A batch over ``SCREEN_BATCH`` images: ``_rounds`` on that many images (chunks cut to fit), where a run costs
    a fraction of the full batch's, then the full batch for what those cannot settle. Returns (full-batch
    ``{name: seconds}`` of every round, of the last round, ``{"batch", "seconds"}`` of the smaller batch's).

    A chunk of c images runs the same XLA kernels at any batch, one chunk after another, so the smaller batch
    ranks the Winograd algorithms and climbs their chunk sizes up to its own size. The full batch times the
    winner beside its finalists (``_finalists``: direct and the closest other Winograd algorithm, within
    ``SCREEN_KEEP``) if direct, whose kernels do not run per chunk, is one of them, or a finalist's chunk size
    differs there (training's limit grows with the batch), or (after a side-by-side round there, if their times
    came from different rounds) those within ``NEAR_RATIO`` of the winner there (``_near_equals``), and climbs
    the winner's chunk size on up if it ended at the largest size the smaller batch allows. Near equals on 8
    images turned by 5-14% on 32 in three of one batch-32 run's 18 workloads (Zen 4: 56x56 128->256 inference,
    F(6x6)/1 3% ahead of F(4x4)/2 on 8 images, 0.86 of it on 32).
    Measured side by side on VGG-16's layers (Zen 4), two candidates' ratio moved by up to 10% in the trailing
    one's favour between batch 8 and 32 (more often in the leader's): one dropped at 1.10x would be about even
    there, not ahead. Training starts from the chunk sizes inference chose (``_pruned_by_inference``).
    A full batch that turns the screen's order by more than ``SHIFT_RATIO`` (``_turned``) is timed once more: in
    two batch-32 runs F(4x4) and F(6x6) on 112x112 64->128 inference ran 1.3x-1.4x slower than 4x their time on 8
    images, through the whole full-batch measurement, and direct won there (F(6x6) 1.32x ahead in a later run).
    """
    small = dataclasses.replace(workload, batch=SCREEN_BATCH)
    screened = [_at_batch(choice, small) for choice in candidates]
    small_seconds, small_last = _rounds(small, measure, _unique(screened), pruned)
    finalists = _finalists(small, measure, small_seconds, small_last)
    small_best, small_names = small_seconds[finalists[0].name], [choice.name for choice in finalists]
    if pruned:
        finalists = _back_to_full_sizes(finalists, candidates, screened)
    # Winograd finalists that ran on fewer images as they would on the full batch (same chunk size) are ranked.
    ranked = [c.name for c in finalists] == small_names and all(c.algorithm != "direct" for c in finalists)
    winner, seconds, final_round = finalists[0], {}, {}
    if winner.algorithm != "direct" and not pruned and winner.chunk == _chunk_divisors(small, winner.algorithm)[-1]:
        final_round = _climb_chunks(workload, measure, seconds, winner, finalists[1:], upward=True)
    elif len(finalists) > 1 and not ranked:
        seconds = dict(measure(workload, finalists))
        final_round = dict(seconds)
    elif len(finalists) > 1 and not set(small_names) <= set(small_last):
        # Side by side on fewer images: a rival's time there may be from another round, another moment.
        final_round = dict(measure(small, finalists + _near_equal_sizes(winner, small_last)))
        small_seconds.update(final_round)
    if ranked and len(finalists) > 1:
        near = _near_equals(final_round or {name: small_last[name] for name in small_names}, workload)
        if len(near) > 1:
            seconds = dict(measure(workload, near))
            final_round = dict(seconds)
    if seconds and _turned(small_seconds, Choice.parse(small_names[0]).algorithm, final_round) > SHIFT_RATIO:
        final_round = _once_more(workload, measure, seconds, final_round)
    screen = {"batch": SCREEN_BATCH, "seconds": small_seconds}
    return seconds, final_round or {winner.name: small_best}, screen


def _back_to_full_sizes(finalists, candidates, screened):
    """Training's ``finalists`` at the chunk sizes they were given for the full batch (``candidates``, which ran as
    ``screened`` on fewer images); where two sizes became one there (inference's pick's and the rule's, both cut to
    the smaller batch), inference's, which ran fastest on the full batch there. At 56x56 128->256, batch 32 (Zen
    4), F(4x4) in chunks of 1 (inference's) ran 2-6% ahead of chunks of 2 (the rule's) in three side-by-side
    measurements. Both on the full batch: batch-32 training tuning took 50.7-75.2 s in six runs (mean 63.6), the
    rule's alone 40.3-64.3 s in four (mean 53.1), for a layer under a tenth of the pass's time.
    """
    full_size = {}
    for full, cut in zip(candidates, screened):
        full_size.setdefault(cut.name, full)
    return [full_size.get(choice.name, choice) for choice in finalists]


def _unique(choices):
    """``choices`` without repeats (by name), in order: each is compiled once."""
    first = {}
    for choice in choices:
        first.setdefault(choice.name, choice)
    return list(first.values())


def _near_equals(small_round, workload):
    """``[Choice]`` for ``workload``'s batch: the candidates of ``small_round`` (``{name: seconds}``, one round on
    fewer images) within ``NEAR_RATIO`` of its fastest, fastest first."""
    best = min(small_round.values())
    return [_at_batch(Choice.parse(name), workload) for name in sorted(small_round, key=small_round.get)
            if small_round[name] <= NEAR_RATIO * best]


def _turned(small_seconds, small_winner, full_round):
    """How far the full batch's winner turned the screen's order: (the time of ``small_winner``, the screen's
    winning algorithm, over the full batch winner's) on the full batch, over the same on the screen, each algorithm
    at its fastest; 1.0 if the same algorithm won both (or one of the two did not run on both batches)."""
    small, full = _fastest_per_algorithm(small_seconds), _fastest_per_algorithm(full_round)
    full_winner = min(full, key=lambda algorithm: full[algorithm][0])
    if full_winner == small_winner or small_winner not in full or full_winner not in small:
        return 1.0
    return (full[small_winner][0] / full[full_winner][0]) / (small[small_winner][0] / small[full_winner][0])


def _once_more(workload, measure, seconds, last_round):
    """``last_round``'s contenders timed again side by side, each keeping its best time of both moments (also in
    ``seconds``); returns those times."""
    again = measure(workload, [Choice.parse(name) for name in last_round])
    both = {name: min(t, again.get(name, t)) for name, t in last_round.items()}
    seconds.update(both)
    return both


def _finalists(small, measure, seconds, last_round):
    """The smaller batch's winner (first), then direct and the closest other Winograd algorithm (at its fastest
    there) if within ``SCREEN_KEEP`` of it, as ``Choice``s: the third Winograd algorithm within it at 224x224
    64->64 training added 6 s at batch 32 (two more runs of 2 s), behind two others. If none is within it, but the
    runner-up is within ``CLOSE_RATIO``, the two are timed once more and each keeps its best time of both moments
    (``seconds`` updated): the winner would decide alone, and a burst of load on a shared machine once slowed one
    candidate by 1.5x across a whole measurement."""
    winner = Choice.parse(min(last_round, key=last_round.get))
    rivals, best = _rivals(seconds, winner), seconds[winner.name]
    if rivals and SCREEN_KEEP * best < rivals[0][1] <= CLOSE_RATIO * best:
        runner_up = rivals[0][0]
        _once_more(small, measure, seconds, {choice.name: seconds[choice.name] for choice in (winner, runner_up)})
        winner = min((winner, runner_up), key=lambda choice: seconds[choice.name])
        rivals, best = _rivals(seconds, winner), seconds[winner.name]
    kept, closest = [choice for choice, t in rivals if t <= SCREEN_KEEP * best], _closest_winograd(seconds, winner)
    return [winner] + [choice for choice in kept if choice.algorithm == "direct" or choice in closest]


def _near_equal_sizes(winner, last_round):
    """``[Choice]``: the winner's algorithm at the other chunk size closest to it in ``last_round``, if within
    ``TIE_RATIO`` there (a climb that ended between near equals); else none. It joins the Winograd finalists' side
    by side round on fewer images (cheap there): at 112x112 64->128 the climb's F(6x6) in chunks of 1 and 2 went 52
    against 51 ms, chunks of 2 then lost to F(4x4) by 7%, and chunks of 1 had run 14% ahead of F(4x4)."""
    if winner.name not in last_round:
        return []
    same = [(t, name) for name, t in last_round.items()
            if name != winner.name and Choice.parse(name).kernels == winner.kernels]
    t, name = min(same, default=(float("inf"), None))
    return [Choice.parse(name)] if t <= TIE_RATIO * last_round[winner.name] else []


def _rivals(seconds, winner):
    """``[(Choice, seconds)]``, fastest first: each algorithm but the winner's at its fastest in ``seconds``."""
    fastest = _fastest_per_algorithm(seconds)
    fastest.pop(winner.algorithm, None)
    return sorted(((Choice(algorithm, chunk, products), t) for algorithm, (t, chunk, products) in fastest.items()),
                  key=lambda pair: pair[1])


def _at_batch(choice, workload):
    """``choice`` for ``workload``'s batch: its chunk cut to the largest divisor within the batch and the limit."""
    if choice.chunk is None:
        return choice
    limit = min(choice.chunk, _chunk_limit(workload, choice.algorithm))
    return dataclasses.replace(choice, chunk=_largest_divisor(workload.batch, limit))


def _pruned_by_inference(workload, candidates, inference_entry):
    """Training candidates from the same layer's inference timings: direct, and each Winograd algorithm within
    ``PRUNE_RATIO`` of the fastest Winograd inference candidate, with the chunk size (within ``_chunk_limit``) and
    the products' placement of inference's pick (another algorithm: those it ran fastest with); none if even the
    fastest ran over ``TRAINING_GIVE_UP`` x direct's inference time. Ranked by the inference screen if it had one
    (every algorithm side by side there), placed by its full batch's timings where the algorithm ran there.
    The pick's algorithm also runs with the rule's chunk size (``candidates``'), if another: the passes' best
    sizes differ. At 112x112 128->128, batch 8 (Zen 4), inference picked F(6x6) in chunks of 4 (cut to 2 by
    training's limit), and in training chunks of 1 ran 5-20% ahead of chunks of 2 in five of six interleaved
    measurements (at 64->128 in four of four).

    Training a candidate costs several XLA compilations (forward, gradients) and seconds per run on the big layers.
    The same algorithm computes the forward pass and both gradients, so inference roughly ranks the Winograd
    variants, but not exactly: at 14x14 F(2x2) ran 1.33x behind F(4x4) in inference and 2x ahead in training
    (F(4x4)'s tiles waste more of a 14x14 image in each of the three products), hence the wide margin. Direct is
    another matter: its gradients are other kernels (oneDNN's backward convolutions), so its inference time does
    not rank it in training: at 224x224 64->64, F(6x6) ran 1.6x behind direct in inference and 2.3x ahead in
    training (on an AVX2 CPU with oneDNN), hence the far wider bound there.
    """
    screen = inference_entry.get("screen") or {}
    fastest = _fastest_per_algorithm(screen.get("seconds") or inference_entry["seconds"])   # ranks
    placed = {**fastest, **_fastest_per_algorithm(inference_entry["seconds"])}                # chunks, products
    pick = Choice.parse(inference_entry["choice"]) if "choice" in inference_entry else None
    if pick:   # its own pick's (a time from another round may be lower, by noise)
        placed[pick.algorithm] = (None, pick.chunk, pick.products)
    direct = fastest.pop("direct", (float("inf"),))[0]
    best = min((seconds for seconds, *_ in fastest.values()), default=float("inf"))
    kept = [Choice("direct")]
    if best > TRAINING_GIVE_UP * direct:
        return kept
    for choice in candidates[1:]:
        seconds = fastest.get(choice.algorithm, (float("inf"),))[0]
        if seconds <= PRUNE_RATIO * best:
            _, chunk, products = placed[choice.algorithm]
            kept.append(_at_batch(Choice(choice.algorithm, chunk or choice.chunk, products), workload))
            if pick and choice.algorithm == pick.algorithm and kept[-1].chunk != choice.chunk:
                kept.append(dataclasses.replace(kept[-1], chunk=choice.chunk))   # the rule's size as well
    return kept


def _fastest_per_algorithm(seconds):
    """``{algorithm: (seconds, chunk, products)}``: each algorithm's fastest candidate in ``{name: seconds}``."""
    fastest = {}
    for name, time_taken in seconds.items():
        choice = Choice.parse(name)
        if time_taken < fastest.get(choice.algorithm, (float("inf"),))[0]:
            fastest[choice.algorithm] = (time_taken, choice.chunk, choice.products)
    return fastest


@contextlib.contextmanager
def _quiet_retracing():
    """Each candidate is a new ``tf.function`` by design; TensorFlow's warning about retracing is not for us."""
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        yield
    finally:
        logger.setLevel(level)


def _rounds(workload, measure, candidates, pruned):
    """``({choice name: seconds} of every round, {choice name: seconds} of the last round)``: the winner comes from
    the last round alone, timed side by side (a later round's times replace an earlier one's for the same choice;
    a choice timed only in an earlier round lost there, and its time next to the last round's, measured at another
    moment of a noisy machine, could win by noise: seen on a shared VM, 30% between rounds).

    First ``candidates`` side by side (every algorithm with the rule's chunking); then, if the fastest Winograd is
    within ``CLOSE_RATIO`` of the best, its chunk size is searched (``_climb_chunks``, beside direct unless it lost
    by ``DROP_RATIO``, and beside a close rival, ``_closest_winograd``), or at batch 1 for inference, with no sizes
    to climb, its products' placement (``_products_round``). ``pruned`` (training's candidates from inference,
    chunk sizes included): one round.
    A last round that turned the first's order by a spell of the machine (``_turned_by_a_spell``) runs once more,
    each contender keeping its best time of both moments.
    """
    seconds = dict(measure(workload, candidates))
    if not seconds:
        raise RuntimeError(f"no convolution candidate ran for {workload.key()}")
    first_round, last_round = dict(seconds), dict(seconds)
    if workload.pass_name == "inference" and workload.batch == 1:   # no chunk sizes to climb: a round of its own
        last_round = _products_round(workload, measure, seconds) or last_round
    fastest_winograd = min((n for n in last_round if n != "direct"), key=last_round.get, default=None)
    if fastest_winograd and workload.batch > 1 and not pruned and \
            last_round[fastest_winograd] <= CLOSE_RATIO * min(last_round.values()):
        climber = Choice.parse(fastest_winograd)
        with_direct = seconds.get("direct", float("inf")) <= DROP_RATIO * seconds[fastest_winograd]
        beside = ([Choice("direct")] if with_direct else []) + _closest_winograd(last_round, climber)
        last_round = _climb_chunks(workload, measure, seconds, climber, beside) or last_round
    if _turned_by_a_spell(first_round, last_round):
        last_round = _once_more(workload, measure, seconds, last_round)
    return seconds, last_round


def _closest_winograd(seconds, leader):
    """``[Choice]``: the other Winograd algorithm closest to ``leader`` in ``seconds`` (at its fastest there), if
    within ``SCREEN_KEEP`` of it; else none. A screen's finalist, and the climb's rival in its first round: without
    it one round's noise decided between the two for good (at 112x112 64->128 inference, batch 8, Zen 4, F(4x4)
    led F(6x6) by 3%, 48.9 against 50.6 ms, the climb ran on F(4x4) alone, and ten interleaved measurements later
    in one process had F(6x6) 4-17% ahead in every one)."""
    rivals = [(choice, t) for choice, t in _rivals(seconds, leader) if choice.algorithm != "direct"]
    return [rivals[0][0]] if rivals and rivals[0][1] <= SCREEN_KEEP * seconds[leader.name] else []


def _turned_by_a_spell(before, after):
    """Whether a later round (``after``) turned the order of the candidates both rounds timed, one of them
    changing speed against another by over ``SHIFT_RATIO`` between the rounds: the same computations, so the
    machine changed. Seen at 112x112 64->128 inference, batch 8 (Zen 4): F(6x6) led direct in the first round,
    ran 75.5 ms against direct's 67.5 in the climb's, and direct became the pick; a table timed later had F(6x6)
    at 47.5 ms, direct 66.9."""
    common = [name for name in after if name in before]
    if len(common) < 2 or min(common, key=before.get) == min(common, key=after.get):
        return False
    change = [after[name] / before[name] for name in common]
    return max(change) / min(change) > SHIFT_RATIO


def _products_round(workload, measure, seconds):
    """The Winograd candidates within ``CLOSE_RATIO`` of the best, each also with its products inside one XLA
    function with the transforms (``products="xla"``), beside direct unless it lost by ``DROP_RATIO``; updates
    ``seconds``, returns this round's timings (``{}`` if no Winograd candidate was close). One more compilation
    per close algorithm, not per algorithm: the placement only decides between near equals."""
    best = min(seconds.values())
    close = [Choice.parse(n) for n in seconds if n != "direct" and seconds[n] <= CLOSE_RATIO * best]
    if not close:
        return {}
    others = [Choice("direct")] if seconds.get("direct", float("inf")) <= DROP_RATIO * best else []
    result = measure(workload, others + close + [dataclasses.replace(c, products="xla") for c in close])
    seconds.update(result)
    return dict(result)


def _climb_chunks(workload, measure, seconds, winner, others=(), upward=False):
    """Hill-climb ``winner``'s images per call over the divisors of the batch (up to ``_chunk_limit``); updates
    ``seconds``, returns the last round's timings (``{}`` if nothing ran).

    The first round times the winner beside ``others`` and its neighbours on both sides (``upward``: the next
    larger size only, the smaller ones measured already on fewer images). Each later round times the new best
    beside the next size in the direction that won, and beside every candidate of the round before within
    ``NEAR_RATIO`` of it (``_still_close``), until the best stays or wins by less than ``TIE_RATIO``, a candidate
    that led a round before wins again, or no size is left that way; another algorithm winning: its neighbours on
    both sides (``upward``: it is the pick). Each chunk size is another XLA compilation and a round of runs: the
    search compiles the sizes on its path, not every divisor.
    """
    divisors = _chunk_divisors(workload, winner.algorithm)
    if winner.chunk not in divisors:
        return {}
    current, index, others, leaders = winner, divisors.index(winner.chunk), list(others), {winner.name}
    in_range = lambda *indices: [i for i in indices if 0 <= i < len(divisors)]  # noqa: E731
    steps, final_round = in_range(index + 1) if upward else in_range(index - 1, index + 1), {}
    while steps or others:
        result = measure(workload, others + [current] + [dataclasses.replace(current, chunk=divisors[i])
                                                         for i in steps])
        if not result:
            break
        seconds.update(result)
        final_round = dict(result)
        best = min(result, key=result.get)
        if best in ("direct", *leaders) or result[best] * TIE_RATIO > result.get(current.name, float("inf")):
            break   # the best stays, or a near equal won: the last round's winner is the pick all the same
        best = Choice.parse(best)
        turned = best.kernels != current.kernels
        if turned and upward:
            break   # a finalist beside it won, at the size it ran fastest with on fewer images
        divisors = _chunk_divisors(workload, best.algorithm)
        new_index = divisors.index(best.chunk)
        # Another algorithm or placement won: its neighbours on both sides; else one more size that way.
        steps = in_range(new_index - 1, new_index + 1) if turned else in_range(2 * new_index - index)
        if not steps:
            break   # nothing new to time: the close contenders ran side by side in this round
        others = _still_close(result, best, [divisors[i] for i in steps])
        current, index = best, new_index
        leaders.add(best.name)
    return final_round


def _still_close(result, best, step_sizes):
    """``[Choice]``: the candidates of a climb's round (``result``) within ``NEAR_RATIO`` of its winner ``best``,
    other than it and the sizes it steps to next; they run in the next round, so the pick comes from a round that
    timed every near equal side by side. At 112x112 64->128 inference, batch 8 (Zen 3), F(6x6) in chunks of 2 won
    the climb's second round, ran 82.3 ms in the third beside chunks of 4 alone and was the pick, where chunks of 1
    had run 58.6 ms (the cache entry's times). Within ``SCREEN_KEEP`` instead, the upward climb's full-batch rounds
    timed up to four candidates (batch-32 inference tuning 99 s in that trace, 78 s within ``NEAR_RATIO``, Zen 3;
    one trace each)."""
    steps = {dataclasses.replace(best, chunk=size).name for size in step_sizes}
    return [Choice.parse(name) for name, t in result.items()
            if name != best.name and name not in steps and t <= NEAR_RATIO * result[best.name]]


def _chunk_divisors(workload, algorithm):
    """The chunk sizes the climb may try: the divisors of the batch up to ``_chunk_limit``."""
    return [d for d in range(1, _chunk_limit(workload, algorithm) + 1) if workload.batch % d == 0]


@tf.autograph.experimental.do_not_convert   # plain Python, also when called while a graph is traced
def choose(workload, fallback):
    """The ``Choice`` for ``workload``: from the cache, else measured now (and cached), else ``Choice(fallback)``.

    The fallback (``winograd.choose``'s rule) decides where tuning is off, on GPUs, for unknown image sizes, and
    under a distribution strategy for a workload not tuned before (``tune_network`` first, outside it). With an
    unknown batch size (a graph traced for any batch) the layer's pick at the largest batch tuned is taken, its
    chunk size left to the rule (nothing is measured: no batch to measure), else the fallback.
    Measuring runs eagerly even while a ``tf.function`` is being traced or a tape records (``_in_fresh_thread``).
    """
    if None in (workload.height, workload.width) or not enabled() or tf.config.list_physical_devices("GPU"):
        return Choice(fallback)
    cache = current_cache()
    if workload.batch is None:
        entry = cache.largest_batch(workload)
        return dataclasses.replace(Choice.parse(entry["choice"]), chunk=None) if entry else Choice(fallback)
    entry = cache.get(workload)
    if entry is None:
        if tf.distribute.has_strategy() or not _MEASURING[0]:
            return Choice(fallback)
        entry = _in_fresh_thread(tune, workload, None, _inference_entry(cache, workload))
        cache.put(workload, entry)
    return Choice.parse(entry["choice"])


def _inference_entry(cache, workload):
    """The inference entry of a training workload's layer, if tuned (``tune_network`` tunes inference first)."""
    if workload.pass_name != "training":
        return None
    return cache.get(dataclasses.replace(workload, pass_name="inference"))


def _in_fresh_thread(fn, *args):
    """``fn(*args)`` in a new thread: TensorFlow's graph, tape and device stacks are per thread, so it runs eagerly
    with nothing recorded (``tf.init_scope`` pauses the tapes, and a tape inside it then records nothing)."""
    outcome = {}

    def target():
        try:
            outcome["value"] = fn(*args)
        except BaseException as e:   # re-raised in the caller's thread
            outcome["error"] = e

    thread = threading.Thread(target=target, name="tfvgg-autotune")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def network_workloads(model, batch, dtype="float32", data_format="NHWC", pass_name="training", image_size=None):
    """``{Workload: [layer names]}`` of a network's 3x3 stride-1 SAME convolutions, in network order."""
    from tfvgg.configs import Conv, get_network
    from tfvgg.summary import summary
    net = get_network(model)
    size = image_size or net.input_shape[0]
    rows = summary(net, (size, size, net.input_shape[2]), print_fn=None).rows
    specs = {layer.name: layer for layer in net.layers}
    workloads, (h, w, c) = {}, (size, size, net.input_shape[2])
    for row in rows:
        spec = specs[row.name]
        if isinstance(spec, Conv) and winograd.supports(spec.kernel, spec.kernel, spec.stride, spec.stride,
                                                          spec.padding):
            key = Workload(h, w, c, spec.channels, batch, tf.as_dtype(dtype).name, data_format, pass_name)
            workloads.setdefault(key, []).append(row.name)
        if len(row.output_shape) == 3:
            h, w, c = row.output_shape
    return workloads


def fallback_rule(workload):
    """``winograd.choose``'s fixed rule for ``workload`` (what "auto" does where tuning is off)."""
    w = workload
    return winograd.choose(3, 3, 1, 1, "SAME", w.height, w.width, w.c_in, w.c_out, w.dtype,
                           pretransformed=w.pass_name == "inference")


def network_choices(model, batch, dtype="float32", data_format="NHWC", pass_name="training", image_size=None):
    """``{layer name: Choice}`` that "auto" makes for each 3x3 convolution of ``model`` (tuning what is missing)."""
    choices = {}
    for workload, layers in network_workloads(model, batch, dtype, data_format, pass_name, image_size).items():
        choice = choose(workload, fallback_rule(workload))
        choices.update({layer: choice for layer in layers})
    return choices


def tune_network(model, batch, dtype="float32", data_format="NHWC", pass_names=PASSES, image_size=None,
                 print_fn=print, budget_seconds=None):
    """Tune each 3x3 convolution workload of ``model`` not yet in the cache; a row per workload and pass.

    Row: ``{"pass", "layers", "workload", "choice", "seconds", "speedup_vs_direct", "reused", "tuning_seconds"}``.
    With ``budget_seconds``, the largest workloads go first (multiply-adds x layers), and once the budget is
    spent the rest keep the fixed rule (row ``"choice"`` from it, ``"seconds"`` empty) and this process measures
    nothing more (``set_measuring(False)``); a later run tunes them. After a pass's workloads, those tuned here
    whose pick had a close rival of the other kind get a ``second_look`` (row ``"second_look"``), while the
    budget lasts.
    """
    cache, rows, start = current_cache(), [], time.perf_counter()
    spent = lambda: budget_seconds and time.perf_counter() - start > budget_seconds  # noqa: E731
    for pass_name in pass_names:
        workloads = network_workloads(model, batch, dtype, data_format, pass_name, image_size)
        order = sorted(workloads, key=lambda w: -w.height * w.width * w.c_in * w.c_out * len(workloads[w])) \
            if budget_seconds else list(workloads)
        looks = []   # (row index, workload, the runs its second look reuses)
        for workload in order:
            entry = cache.get(workload)
            reused = entry is not None
            if not reused and spent():
                set_measuring(False)
                rows.append(_row(pass_name, workloads[workload], workload, None, False, print_fn))
                continue
            if not reused:
                built = {}
                entry = tune(workload, None, _inference_entry(cache, workload), prepared=built)
                cache.put(workload, entry)
                looks += _kept_for_a_second_look(len(rows), workload, entry, built)
            rows.append(_row(pass_name, workloads[workload], workload, entry, reused, print_fn))
        _second_looks(cache, rows, looks, spent, print_fn)   # a pass's length after their tuning: another moment
    return rows


def _kept_for_a_second_look(index, workload, entry, built):
    """``[(index, workload, runs)]`` if ``entry`` has a rival for ``second_look``, else ``[]``; ``runs``: the
    pair's runs that tuning built on the full batch (``tune``'s ``prepared``) and their inputs, so that the look
    does not build them again (only theirs are kept: a 224x224 input at batch 32 takes 411 MB)."""
    pair = _second_look_pair(workload, entry)
    if not pair:
        return []
    runs = built.get(workload, {})
    return [(index, workload, {key: runs[key] for key in ("inputs", *pair) if key in runs})]


def _second_looks(cache, rows, looks, spent, print_fn):
    """``second_look`` at each of ``looks`` in turn until ``spent()``: its cache entry and row updated, printed."""
    for index, workload, runs in looks:
        if spent():
            break
        entry = cache.get(workload)
        looked = second_look(workload, entry, prepared=runs)
        if looked is entry:
            continue
        cache.put(workload, looked)
        row = rows[index] = _row(rows[index]["pass"], rows[index]["layers"], workload, looked, False, None)
        if print_fn:
            times = ", ".join(f"{name} {t * 1e3:.1f} ms" for name, t in looked["second_look"].items())
            best = ", ".join(f"{name} {looked['seconds'][name] * 1e3:.1f}" for name in looked["second_look"])
            verdict = f"now {looked['choice']}" if looked["choice"] != entry["choice"] else "kept"
            print_fn(f"  second look {row['pass']:<9} {','.join(row['layers']):<24} {workload.height}x"
                     f"{workload.width} {workload.c_in}->{workload.c_out}: {times} side by side; best of both "
                     f"moments {best} ms: {verdict} ({looked['tuning_seconds'] - entry['tuning_seconds']:.1f} s)")


def second_look(workload, entry, measure=None, prepared=None):
    """``entry`` after its pick and the closest rival of the other kind (``_second_look_pair``: direct against
    Winograd) ran side by side once more, at another moment (``tune_network``: after the pass's other
    workloads). Each keeps its best time of both moments (``"seconds"``; this look's in ``"second_look"``), and
    the rival becomes the pick if over ``NEAR_RATIO`` faster (within it a near equal, whose order one more run
    decides by noise: at 224x224 64->64 training, batch 32, a look put F(6x6) 3.3% ahead of direct, and the table
    after it direct 6.4% ahead of it). ``entry`` itself if there is no such rival or one of the two fails to
    run. ``measure`` as ``tune``'s; ``prepared``: ``time_choices``' (the pair's runs).

    A slow spell of a shared machine slows Winograd's memory-bound transforms far more than direct convolution
    and can last through all of a workload's rounds, where no rule comparing them can see it: at 112x112 64->128
    inference, batch 8 (Zen 4), the tuner timed F(6x6) at 74.6 ms in every round, where tables timed 47.8-50.3
    ms that evening, and picked direct, which ran at 0.74 of F(6x6)'s speed in those tables.
    """
    pair = _second_look_pair(workload, entry)
    if not pair:
        return entry
    start = time.perf_counter()
    if measure is None:   # no drop: F(6x6) ran 3.8x its tuned time in a look's first round (512 against 134 ms)
        def measure(w, choices):
            return time_choices(w, choices, prepared={} if prepared is None else prepared, budget_rounds=1,
                                drop=False)
    with _quiet_retracing():
        again = measure(workload, pair)
    pick, rival = (choice.name for choice in pair)
    if pick not in again or rival not in again:
        return entry
    both = {name: min(t, entry["seconds"].get(name, t)) for name, t in again.items()}
    return {**entry, "choice": rival if both[rival] * NEAR_RATIO < both[pick] else pick,
            "seconds": {**entry["seconds"], **both}, "second_look": dict(again),
            "tuning_seconds": round(entry["tuning_seconds"] + time.perf_counter() - start, 3)}


def _second_look_pair(workload, entry):
    """``[pick, rival]`` (``Choice``s at ``workload``'s batch) for ``second_look``, or ``[]``. The rival: the other
    kind's fastest (direct, or the fastest Winograd candidate) in the full batch's timings if both kinds ran
    there, else in the screen's, if within ``CLOSE_RATIO`` of the pick's algorithm at its fastest there, and if
    one run of each takes under ``ROUNDS_BUDGET`` by those timings (the screen's scaled to the full batch): past
    it a look gets one run each, and at 224x224 64->64 training, batch 32 (about 4 s a round), four looks of
    4-10 s on a Zen 4 turned no pick for the better."""
    pick, screen = Choice.parse(entry["choice"]), entry.get("screen") or {}
    for seconds, scale in ((entry["seconds"], 1.0), (screen.get("seconds") or {}, workload.batch / (
            screen.get("batch") or workload.batch))):
        fastest = _fastest_per_algorithm(seconds)
        others = {a: f for a, f in fastest.items() if (a == "direct") != (pick.algorithm == "direct")}
        if pick.algorithm in fastest and others:
            algorithm = min(others, key=lambda a: others[a][0])
            (rival_seconds, chunk, products), pick_seconds = others[algorithm], fastest[pick.algorithm][0]
            if rival_seconds > CLOSE_RATIO * pick_seconds or (rival_seconds + pick_seconds) * scale > ROUNDS_BUDGET:
                return []
            return [pick, _at_batch(Choice(algorithm, chunk, products), workload)]
    return []


def _row(pass_name, layers, workload, entry, reused, print_fn):
    """One ``tune_network`` row (``entry`` None: left to the rule), printed."""
    seconds = entry["seconds"] if entry else {}
    choice = entry["choice"] if entry else Choice(fallback_rule(workload)).name
    speedup, at_batch = speedup_vs_direct(entry) if entry else (float("nan"), None)
    if print_fn:
        how = ("cached" if reused else f"tuned in {entry['tuning_seconds']:.1f} s") if entry \
            else "the rule's: the tuning budget is spent"
        where = f" at batch {at_batch}" if at_batch else ""
        print_fn(f"  {pass_name:<9} {','.join(layers):<24} {workload.height}x{workload.width} "
                 f"{workload.c_in}->{workload.c_out}: {choice:<13} {speedup:.2f}x direct{where} ({how})")
    looked = entry or {}
    return {"pass": pass_name, "layers": layers, "workload": workload.key(), "choice": choice, "seconds": seconds,
            "screen": looked.get("screen"), "second_look": looked.get("second_look"), "speedup_vs_direct": speedup,
            "speedup_batch": at_batch or workload.batch, "reused": reused, "tuned": entry is not None,
            "tuning_seconds": entry["tuning_seconds"] if entry and not reused else 0.0}


def speedup_vs_direct(entry):
    """``(direct's seconds / the choice's, None)`` from a cache entry's full-batch timings if both ran there; else
    ``(ratio, screen batch)`` from its screen (the choice's algorithm and placement at their fastest there), or
    NaN if the screen did not run that pair. Direct's own pick: 1.0."""
    choice = Choice.parse(entry["choice"])
    seconds = entry["seconds"]
    if choice.algorithm == "direct":
        return 1.0, None
    if "direct" in seconds and entry["choice"] in seconds:
        return seconds["direct"] / seconds[entry["choice"]], None
    screen = entry.get("screen") or {"batch": None, "seconds": {}}
    same = [t for name, t in screen["seconds"].items() if Choice.parse(name).kernels == choice.kernels]
    if "direct" not in screen["seconds"] or not same:
        return float("nan"), None
    return screen["seconds"]["direct"] / min(same), screen["batch"]
