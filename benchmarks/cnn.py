"""The CNN benchmark's command line, behind ``python -m benchmarks.vgg16`` (and vgg19, or any model via --model).

Times forward and forward-backward passes of a tfvgg network as tf.function
graphs, next to the same network in keras.applications and in the classic TF1
graph if asked (--compare), interleaved batch by batch in one process:
``benchmarks.measure`` measures, ``benchmarks.results`` holds and writes the
results, ``benchmarks.report`` prints them.
"""
import dataclasses

from absl import flags, logging
import tensorflow as tf

import tfvgg
from benchmarks import contestants, measure, report, results
from benchmarks.measure import run_benchmark  # noqa: F401 - the library entry point, also from here
from tfvgg import autotune, cli, memory
from tfvgg.data import records
from tfvgg.cli import FlagSpec, option
from tfvgg.distribute import make_strategy
from tfvgg.ops import nchw_supported
from tfvgg.precision import compute_dtype
from tfvgg.winograd import ALGORITHMS, check_precision

GPU_BATCHES, GPU_WARMUP = 100, 10   # the classic benchmark's counts
CPU_BATCHES, CPU_WARMUP = 5, 2      # a CPU is ~50x slower: keep the default run to a few minutes
PASS_FLAG_VALUES = {"forward": "forward", "forward-backward": "forward_backward", "train": "train"}


@dataclasses.dataclass
class BenchmarkConfig:
    """Every flag of the benchmark, defined once: the absl flags and the JSON's ``flags`` come from here."""
    model: str = option(cli.MODEL, "D")
    batch_size: int = option(FlagSpec("integer", "Images per batch (the global batch under a strategy).",
                                      lower=1), 32)
    micro_batch_size: int = option(cli.MICRO_BATCH_SIZE, 0)
    num_batches: int = option(FlagSpec("integer", f"Timed batches (default {GPU_BATCHES} on GPU, {CPU_BATCHES} "
                                                  "on CPU).", lower=1), None)
    num_warmup_batches: int = option(FlagSpec("integer", f"Untimed batches first (default {GPU_WARMUP} on GPU, "
                                                         f"{CPU_WARMUP} on CPU).", lower=0), None)
    image_size: int = option(cli.IMAGE_SIZE, None)
    num_classes: int = option(cli.NUM_CLASSES, None)
    data_format: str = option(FlagSpec("enum", "Layout (default NCHW on GPU, NHWC on CPU).", ("NHWC", "NCHW")),
                              None)
    precision: str = option(cli.PRECISION, "fp32")
    xla: bool = option(FlagSpec("boolean", "Compile each pass with XLA (jit_compile=True)."), False)
    conv_algorithm: str = option(cli.CONV_ALGORITHM, "auto")
    tuning_budget: float = option(FlagSpec("float", "auto: seconds of tuning per run at most (largest layers "
                                                    "first; the rest keep the fixed rule until a later run tunes "
                                                    "them); 0 = tune every layer.", lower=0), 120.0)
    per_layer: bool = option(FlagSpec("boolean", "First time each convolution layer alone, direct against "
                                                 "Winograd, and mark auto's choice."), False)
    device: str = option(FlagSpec("enum", "Where to run (auto: the first GPU if any).", ("auto", "cpu", "gpu")),
                         "auto")
    passes: list = option(FlagSpec("list", "Passes to time: forward, forward-backward, train.",
                                   tuple(PASS_FLAG_VALUES)), ("forward", "forward-backward"))
    compare: list = option(FlagSpec("list", "Peers timed in the same run: keras, tf1, direct (tfvgg with direct "
                                            "convolutions); onnxruntime, openvino (forward only; pip install -e "
                                            "'.[peers]').", tuple(measure.PEERS)), ())
    data_dir: str = option(FlagSpec("path", "Feed tfvgg from TFRecord shards in the ImageNet layout here "
                                            "(train-*-of-*; python -m tfvgg.data.to_tfrecords makes them), "
                                            "augmented as in training, and time it beside synthetic images too."),
                           None)
    strategy: str = option(cli.STRATEGY, "default")
    cpu_replicas: int = option(cli.CPU_REPLICAS, 0)
    display_every: int = option(FlagSpec("integer", "Print a progress line every this many timed batches.",
                                         lower=1), 10)
    output_json: str = option(FlagSpec("path", "Write the results (JSON) to this file."), None)
    profile_dir: str = option(FlagSpec("path", "After timing, trace 2 more batches of each tfvgg pass with "
                                               "tf.profiler into this directory (TensorBoard's Profile tab)."), None)
    memory_check: bool = option(FlagSpec("boolean", "Before building anything, estimate the memory each pass needs "
                                                    "and refuse a batch that cannot fit (CPU only)."), True)


class UsageError(Exception):
    """A flag value that is valid alone but not for this model or machine."""


def define_flags(default_model):
    cli.define_config_flags(BenchmarkConfig)
    flags.FLAGS.set_default("model", default_model)


def resolve_workload(cfg):
    """(workload, model summary, counts, on_gpu): device-dependent defaults filled, flags checked against them."""
    gpus = tf.config.list_physical_devices("GPU")
    if cfg.device == "gpu" and not gpus:
        raise UsageError("--device=gpu but TensorFlow sees no GPU (install tensorflow[and-cuda] on a GPU machine)")
    on_gpu = cfg.device == "gpu" or (cfg.device == "auto" and bool(gpus))
    check_precision(cfg.conv_algorithm, compute_dtype(cfg.precision))
    net = tfvgg.get_network(cfg.model)
    image_size = cfg.image_size or net.input_shape[0]
    channels = net.input_shape[2]
    try:
        model_summary = tfvgg.summary(net, (image_size, image_size, channels), cfg.num_classes, print_fn=None)
    except ValueError as e:
        raise UsageError(f"--image_size={image_size}: {e}") from None
    data_format = cfg.data_format or ("NCHW" if on_gpu else "NHWC")
    if data_format == "NCHW" and not on_gpu and not nchw_supported():
        raise UsageError("--data_format=NCHW: this TensorFlow has no NCHW convolution on this CPU (oneDNN is off; "
                         "TF_ENABLE_ONEDNN_OPTS=1 turns it on)")
    workload = contestants.Workload(
        model=net.name, batch_size=cfg.batch_size, image_size=image_size, channels=channels,
        num_classes=model_summary.num_classes, data_format=data_format,
        precision=cfg.precision, xla=cfg.xla, device="/GPU:0" if on_gpu else "/CPU:0",
        conv_algorithm=cfg.conv_algorithm, micro_batch_size=cfg.micro_batch_size)
    counts = {
        "num_batches": cfg.num_batches or (GPU_BATCHES if on_gpu else CPU_BATCHES),
        "num_warmup_batches": cfg.num_warmup_batches if cfg.num_warmup_batches is not None
        else (GPU_WARMUP if on_gpu else CPU_WARMUP),
    }
    return workload, model_summary, counts, on_gpu


def check_memory(workload, model_summary, passes, peers, strategy):
    """Raise ``memory.InsufficientMemory`` (one line) if a pass at this batch will not fit in this process's memory.

    Besides tfvgg's pass: the matmul probe (``measure.PROBE_SIZE``), each peer's weights, and under a
    strategy every local replica's variables plus the one-replica contestant's. The train pass's SGD has no
    momentum slot. Returns the largest pass's ``memory.Estimate``.
    """
    weights = model_summary.total_params * memory.PARAMETER_BYTES
    extras = {"matmul probe": 3 * measure.PROBE_SIZE ** 2 * workload.dtype.size}
    replicas, local = strategy.num_replicas_in_sync, 1
    if replicas > 1:
        local = len(strategy.extended.worker_devices)
        extras["one-replica contestant"] = weights
    else:
        extras.update({f"{peer} weights": weights for peer in peers})
    return memory.check_fits(model_summary, workload.batch_size * local // replicas, passes, workload.dtype,
                             workload.conv_algorithm, optimizer_slots=0, replicas=local, extras=extras,
                             micro_batch_size=workload.micro_batch_size * local)


def check_data_dir(data_dir, strategy):
    """UsageError unless ``data_dir`` holds a complete set of training shards and one device runs the passes."""
    if strategy.num_replicas_in_sync > 1:
        raise UsageError("--data_dir feeds one device; leave --strategy at default")
    try:
        records.list_shards(data_dir, "train")
    except FileNotFoundError as e:
        raise UsageError(str(e)) from None


def device_name(device):
    """The GPU's model, or the CPU's model name and core count."""
    if device.startswith("/GPU"):
        gpu = tf.config.list_physical_devices("GPU")[0]
        return tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name)
    return f"{autotune.machine_fingerprint()['cpu']}, {autotune.usable_cores()} cores"


def main(argv):
    logging.set_verbosity(logging.WARNING)   # tf.distribute and the checkpoint saver log at INFO
    cli.no_positional_arguments(argv)
    cfg = cli.config_from_flags(BenchmarkConfig)
    try:
        strategy = make_strategy(cfg.strategy, cfg.cpu_replicas)   # before TensorFlow runs any op
        workload, model_summary, counts, on_gpu = resolve_workload(cfg)
        if cfg.batch_size % strategy.num_replicas_in_sync:
            raise UsageError(f"--batch_size={cfg.batch_size} does not split over "
                             f"{strategy.num_replicas_in_sync} replicas")
        passes = [PASS_FLAG_VALUES[p] for p in cfg.passes]
        if cfg.data_dir:
            check_data_dir(cfg.data_dir, strategy)
        if cfg.memory_check and not on_gpu:   # a GPU's memory is not host RAM; its allocator reports OOM itself
            check_memory(workload, model_summary, passes, cfg.compare, strategy)
    except (UsageError, ValueError) as e:   # memory.InsufficientMemory is a ValueError
        cli.fail(str(e), argv)
    name = device_name(workload.device)
    cpu = None if on_gpu else autotune.machine_fingerprint()
    print("\n".join(report.header_lines(workload, model_summary, name, tf.__version__, cpu)))
    if not on_gpu and cfg.num_batches is None:
        print(f"  no GPU: using the CPU defaults --num_batches={counts['num_batches']} "
              f"--num_warmup_batches={counts['num_warmup_batches']} (the GPU defaults are {GPU_BATCHES} + "
              f"{GPU_WARMUP}); set them to change")
    if cfg.per_layer:
        from benchmarks.conv_layers import conv_shapes, print_algorithm_table
        with tf.device(workload.device):
            print_algorithm_table(conv_shapes(workload.model, workload.image_size, workload.channels),
                                  workload.batch_size, compute_dtype(workload.precision),
                                  list(ALGORITHMS), repeats=3)
    measured = run_benchmark(workload, model_summary, counts, passes, cfg.compare, cfg.display_every,
                             profile_dir=cfg.profile_dir, strategy=strategy,
                             tuning_budget=cfg.tuning_budget or None, data_dir=cfg.data_dir)
    resolved = {**dataclasses.asdict(cfg), **counts, "image_size": workload.image_size,
                "data_format": workload.data_format}
    run = results.with_run_metadata(measured, model_summary, workload.device, name, resolved)
    print("\nResults")
    print(report.results_table(run, passes))
    if cfg.output_json:
        results.write_results(cfg.output_json, run)
        print(f"Wrote {cfg.output_json}")
    if "error" in run:   # out of memory after all: the results so far are out, then one line and exit code 2
        cli.fail(run["error"], argv)
    return 0
