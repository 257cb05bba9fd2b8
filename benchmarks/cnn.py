"""The CNN benchmark behind ``python -m benchmarks.vgg16`` (and vgg19, or any tfvgg model via --model).

Times forward and forward-backward passes of a tfvgg network as tf.function
graphs, next to the same network in keras.applications and in the classic TF1
graph if asked (--compare), interleaved batch by batch in one process.
"""
import dataclasses
import datetime
import json
import os
import platform

from absl import flags, logging
import tensorflow as tf

import tfvgg
from tfvgg.cli import fail
from tfvgg.distribute import STRATEGIES, make_strategy
from tfvgg.ops import CONV_ALGORITHMS
from benchmarks import contestants, timing
from tfvgg.precision import compute_dtype
from tfvgg.winograd import check_precision

FLAGS = flags.FLAGS
GPU_BATCHES, GPU_WARMUP = 100, 10   # the classic benchmark's counts
CPU_BATCHES, CPU_WARMUP = 5, 2      # a CPU is ~50x slower: keep the default run to a few minutes
PEERS = {"keras": contestants.keras_passes, "tf1": contestants.tf1_passes}
PASS_TITLES = {"forward": "Forward", "forward_backward": "Forward-backward", "train": "Train step"}
ONE_REPLICA = "tfvgg_1replica"
PASS_FLAG_VALUES = {"forward": "forward", "forward-backward": "forward_backward", "train": "train"}


class UsageError(Exception):
    """A flag value that is valid alone but not for this model or machine."""


def define_flags(default_model):
    flags.DEFINE_enum("model", default_model, tfvgg.network_names(), "Network to time.", case_sensitive=False)
    flags.DEFINE_integer("batch_size", 32, "Images per batch.", lower_bound=1)
    flags.DEFINE_integer("num_batches", None, f"Timed batches (default {GPU_BATCHES} on GPU, {CPU_BATCHES} on CPU).",
                         lower_bound=1)
    flags.DEFINE_integer("num_warmup_batches", None,
                         f"Untimed batches first (default {GPU_WARMUP} on GPU, {CPU_WARMUP} on CPU).", lower_bound=0)
    flags.DEFINE_integer("image_size", None, "Image height and width (default: the network's, 224 for VGG).",
                         lower_bound=1)
    flags.DEFINE_integer("num_classes", None, "Width of the last layer (default: the network's).", lower_bound=1)
    flags.DEFINE_enum("data_format", None, ["NHWC", "NCHW"], "Layout (default NCHW on GPU, NHWC on CPU).")
    flags.DEFINE_enum("precision", "fp32", ["fp32", "bf16", "fp16"],
                      "Compute precision; bf16/fp16 keep float32 variables (mixed precision); fp16 scales the loss.")
    flags.DEFINE_boolean("xla", False, "Compile each pass with XLA (jit_compile=True).")
    flags.DEFINE_enum("conv_algorithm", "auto", list(CONV_ALGORITHMS), "tfvgg's 3x3 convolutions: direct "
                      "(tf.nn.conv2d), winograd2, winograd4 (F(2x2,3x3), F(4x4,3x3)), or auto (per layer: the "
                      "fastest measured; direct on GPUs, in bf16/fp16 and where Winograd loses).")
    flags.DEFINE_boolean("per_layer", False, "First time each convolution layer alone, direct against Winograd, "
                         "and mark auto's choice.")
    flags.DEFINE_enum("device", "auto", ["auto", "cpu", "gpu"], "Where to run (auto: the first GPU if any).")
    flags.DEFINE_list("passes", ["forward", "forward-backward"], "Passes to time: forward, forward-backward, train.")
    flags.DEFINE_list("compare", [], "Peers timed in the same run: keras, tf1.")
    flags.DEFINE_enum("strategy", "default", list(STRATEGIES), "default (one device), mirrored (local GPUs, or "
                      "--cpu_replicas CPU devices), multi_worker (TF_CONFIG); --batch_size is the global batch.")
    flags.DEFINE_integer("cpu_replicas", 0, "With --strategy=mirrored and no GPU: logical CPU devices.", lower_bound=0)
    flags.DEFINE_integer("display_every", 10, "Print a progress line every this many timed batches.", lower_bound=1)
    flags.DEFINE_string("output_json", None, "Write machine-readable results to this file.")
    flags.DEFINE_string("profile_dir", None, "After timing, trace 2 more batches of each tfvgg pass with "
                        "tf.profiler into this directory (open with TensorBoard's Profile tab).")
    flags.register_validator("passes", lambda v: bool(v) and all(x in PASS_FLAG_VALUES for x in v),
                             f"--passes takes a comma-separated subset of {', '.join(PASS_FLAG_VALUES)}")
    flags.register_validator("compare", lambda v: all(x in PEERS for x in v),
                             f"--compare takes a comma-separated subset of {', '.join(PEERS)}")


def resolve_workload(f):
    """Fill device-dependent defaults and check the flags against the model and the machine."""
    gpus = tf.config.list_physical_devices("GPU")
    if f.device == "gpu" and not gpus:
        raise UsageError("--device=gpu but TensorFlow sees no GPU (install tensorflow[and-cuda] on a GPU machine)")
    on_gpu = f.device == "gpu" or (f.device == "auto" and bool(gpus))
    check_precision(f.conv_algorithm, compute_dtype(f.precision))
    net = tfvgg.get_network(f.model)
    image_size = f.image_size or net.input_shape[0]
    channels = net.input_shape[2]
    try:
        model_summary = tfvgg.summary(net, (image_size, image_size, channels), f.num_classes, print_fn=None)
    except ValueError as e:
        raise UsageError(f"--image_size={image_size}: {e}") from None
    workload = contestants.Workload(
        model=net.name, batch_size=f.batch_size, image_size=image_size, channels=channels,
        num_classes=model_summary.num_classes, data_format=f.data_format or ("NCHW" if on_gpu else "NHWC"),
        precision=f.precision, xla=f.xla, device="/GPU:0" if on_gpu else "/CPU:0",
        conv_algorithm=f.conv_algorithm)
    counts = {
        "num_batches": f.num_batches or (GPU_BATCHES if on_gpu else CPU_BATCHES),
        "num_warmup_batches": f.num_warmup_batches if f.num_warmup_batches is not None
        else (GPU_WARMUP if on_gpu else CPU_WARMUP),
    }
    return workload, model_summary, counts, on_gpu


def device_name(device):
    if device.startswith("/GPU"):
        gpu = tf.config.list_physical_devices("GPU")[0]
        return tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name)
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next((l.split(":", 1)[1].strip() for l in cpuinfo if l.startswith("model name")), "")
    except OSError:
        model = ""
    return f"{model or platform.processor() or 'CPU'}, {os.cpu_count()} cores"


def run_benchmark(workload, model_summary, counts, passes, peers, display_every, print_fn=print, probe_size=4096,
                  profile_dir=None, strategy=None):
    """Time ``passes`` for tfvgg and ``peers``; returns the results dict (see BUILD.md for its fields).

    With a multi-replica ``strategy``, tfvgg runs data-parallel on the global batch
    and once more on one replica's share alone, for the scaling efficiency; the
    peers (one device each) are then skipped.
    """
    strategy = strategy or tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    flops_per_image = {"forward": 2.0 * model_summary.total_mult_adds}
    flops_per_image["forward_backward"] = flops_per_image["train"] = 3 * flops_per_image["forward"]
    dev = workload.device.lstrip("/")

    print_fn(f"Probing the {dev} matmul peak in {workload.precision} ...")
    peak = timing.matmul_peak_flops(compute_dtype(workload.precision), n=probe_size, device=workload.device)
    print_fn(f"  peak {peak / 1e12:.3f} TFLOP/s (best of 5 {probe_size}x{probe_size} matmuls)")

    builders = {"tfvgg": lambda w, p: contestants.tfvgg_passes(w, p, strategy)}
    batch_of = {"tfvgg": workload.batch_size}
    skipped = {}
    if replicas > 1:
        one = dataclasses.replace(workload, batch_size=workload.batch_size // replicas,
                                  device=strategy.extended.worker_devices[0])
        builders[ONE_REPLICA] = lambda w, p: contestants.tfvgg_passes(one, p)
        batch_of[ONE_REPLICA] = one.batch_size
        skipped.update({peer: "peers run on one device; compare with tfvgg on one replica" for peer in peers})
    else:
        builders.update({name: PEERS[name] for name in peers})
        batch_of.update({name: workload.batch_size for name in peers})
    runs = {}
    for name, build in builders.items():
        try:
            runs[name] = build(workload, passes)
        except contestants.PeerUnavailable as e:
            skipped[name] = str(e)
            print_fn(f"  skipping {name}: {e}")

    results = {"peak_tflops": peak / 1e12, "compare": {}, "skipped": skipped, "replicas": replicas}
    for pass_name in passes:
        title = PASS_TITLES[pass_name]
        timing.reset_peak_memory(dev)
        contenders = {name: run[pass_name] for name, run in runs.items()}
        print_fn(f"{title}: {counts['num_warmup_batches']} warm-up + {counts['num_batches']} timed batches "
                 f"of {workload.batch_size}" + (f" ({', '.join(contenders)} interleaved)" if len(contenders) > 1 else ""))
        try:
            timings = timing.time_contestants(contenders, counts["num_batches"], counts["num_warmup_batches"],
                                              log_every=display_every, print_fn=print_fn, label="  ")
        except tf.errors.ResourceExhaustedError:
            results["error"] = (f"out of memory on {dev} during {title.lower()} with --batch_size="
                                f"{workload.batch_size}; try --batch_size={max(1, workload.batch_size // 2)} "
                                f"or --precision=bf16/fp16")
            print_fn(results["error"])
            break
        memory, memory_kind = timing.peak_memory_bytes(dev)
        for name, t in timings.items():
            flops = flops_per_image[pass_name] * batch_of[name]
            entry = {
                "seconds_per_batch_mean": t.mean,
                "seconds_per_batch_sd": t.sd,
                "seconds_per_batch_best": t.best,
                "num_batches": t.count,
                "images_per_sec": batch_of[name] / t.mean,
                "tflops": flops / t.mean / 1e12,
                "peak_fraction": flops / t.mean / peak,
            }
            print_fn(f"  {datetime.datetime.now():%Y-%m-%d %H:%M:%S}: {name} {t.describe(title)}, "
                     f"{entry['images_per_sec']:.2f} images/s, {entry['tflops']:.3f} TFLOP/s, "
                     f"{entry['peak_fraction']:.2f} of peak")
            if name == "tfvgg":
                results[pass_name] = {**entry, "peak_memory_bytes": memory, "peak_memory_kind": memory_kind}
                if replicas > 1:
                    results[pass_name]["images_per_sec_per_replica"] = entry["images_per_sec"] / replicas
            elif name == ONE_REPLICA:
                total = results[pass_name]["images_per_sec"]
                results.setdefault("scaling", {})[pass_name] = {
                    "replicas": replicas, "images_per_sec": total, "images_per_sec_per_replica": total / replicas,
                    "one_replica_images_per_sec": entry["images_per_sec"],
                    "efficiency": total / (replicas * entry["images_per_sec"])}
                scaling = results["scaling"][pass_name]
                print_fn(f"  scaling over {replicas} replicas: {total:.2f} images/s in all, "
                         f"{scaling['images_per_sec_per_replica']:.2f} per replica, {entry['images_per_sec']:.2f} "
                         f"on one replica alone: efficiency {scaling['efficiency']:.2f}")
            else:  # tfvgg comes first in `timings`, so its entry exists
                entry["ratio"] = results[pass_name]["images_per_sec"] / entry["images_per_sec"]
                results["compare"].setdefault(name, {})[pass_name] = entry
        print_fn(f"  peak memory ({memory_kind}): {memory / 2 ** 20:,.0f} MiB")
    if profile_dir and "error" not in results:
        profile(runs["tfvgg"], passes, profile_dir)
        print_fn(f"Profile of 2 batches per pass written to {profile_dir} (tensorboard --logdir {profile_dir})")
    return results


def profile(runs, passes, profile_dir, batches=2):
    """Trace ``batches`` batches of each pass with the TensorFlow profiler (untimed)."""
    tf.profiler.experimental.start(profile_dir)
    try:
        for pass_name in passes:
            for step in range(batches):
                with tf.profiler.experimental.Trace(pass_name, step_num=step, _r=1):
                    runs[pass_name]()
    finally:
        tf.profiler.experimental.stop()


def results_table(results, passes):
    lines = [f"{'pass':<18} {'who':<6} {'s/batch (mean +/- sd)':>22} {'images/s':>9} {'TFLOP/s':>8} "
             f"{'of peak':>7} {'tfvgg/peer':>10}"]
    for pass_name in passes:
        if pass_name not in results:
            continue
        rows = [("tfvgg", results[pass_name])] + [(peer, by_pass[pass_name])
                                                  for peer, by_pass in results["compare"].items()
                                                  if pass_name in by_pass]
        for who, e in rows:
            ratio = f"{e['ratio']:.2f}x" if "ratio" in e else ""
            lines.append(f"{pass_name:<18} {who:<6} {e['seconds_per_batch_mean']:>12.3f} +/- "
                         f"{e['seconds_per_batch_sd']:<6.3f} {e['images_per_sec']:>9.2f} {e['tflops']:>8.3f} "
                         f"{e['peak_fraction']:>7.2f} {ratio:>10}")
    return "\n".join(lines)


def write_json_atomically(path, data):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def main(argv):
    logging.set_verbosity(logging.WARNING)   # tf.distribute and the checkpoint saver log at INFO
    if len(argv) > 1:
        fail(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        strategy = make_strategy(FLAGS.strategy, FLAGS.cpu_replicas)   # before TensorFlow runs any op
        workload, model_summary, counts, on_gpu = resolve_workload(FLAGS)
        if FLAGS.batch_size % strategy.num_replicas_in_sync:
            raise UsageError(f"--batch_size={FLAGS.batch_size} does not split over "
                             f"{strategy.num_replicas_in_sync} replicas")
    except (UsageError, ValueError) as e:
        fail(str(e))
    passes = [PASS_FLAG_VALUES[p] for p in FLAGS.passes]
    name = device_name(workload.device)
    print(f"tfvgg benchmark: {model_summary.description or model_summary.network}, TensorFlow {tf.__version__}")
    print(f"  device {workload.device.lstrip('/')} ({name}); batch {workload.batch_size}; "
          f"image {workload.image_size}x{workload.image_size}x{workload.channels}; {workload.data_format}; "
          f"{workload.precision}; XLA {'on' if workload.xla else 'off'}; convolutions {workload.conv_algorithm}")
    print(f"  {model_summary.total_params:,} parameters; {model_summary.total_mult_adds / 1e9:.2f} G multiply-adds "
          f"per image forward (forward-backward counted as 3x)")
    if workload.conv_algorithm != "direct":
        print("  TFLOP/s and 'of peak' count the direct convolution's multiply-adds for every pass; Winograd layers "
              "do fewer, so 'of peak' can pass 1 (--conv_algorithm=direct for the kernels' own rate)")
    if not on_gpu and FLAGS.num_batches is None:
        print(f"  no GPU: using the CPU defaults --num_batches={counts['num_batches']} "
              f"--num_warmup_batches={counts['num_warmup_batches']} (the GPU defaults are {GPU_BATCHES} + "
              f"{GPU_WARMUP}); set them to change")
    if FLAGS.per_layer:
        from benchmarks.conv_layers import conv_shapes, print_algorithm_table
        with tf.device(workload.device):
            print_algorithm_table(conv_shapes(workload.model, workload.image_size, workload.channels),
                                  workload.batch_size, compute_dtype(workload.precision),
                                  ["winograd2", "winograd4"], repeats=3)
    results = run_benchmark(workload, model_summary, counts, passes, FLAGS.compare, FLAGS.display_every,
                            profile_dir=FLAGS.profile_dir, strategy=strategy)
    print("\nResults")
    print(results_table(results, passes))
    for peer, reason in results["skipped"].items():
        print(f"  {peer}: skipped ({reason})")
    results.update({
        "tf_version": tf.__version__,
        "device": workload.device.lstrip("/"),
        "device_name": name,
        "model": model_summary.network,
        "parameters": model_summary.total_params,
        "mult_adds_per_image": model_summary.total_mult_adds,
        "tflops_counted_from": "direct convolution multiply-adds x 2 (forward-backward x 3)",
        "flags": {**{k: getattr(FLAGS, k) for k in ("model", "batch_size", "image_size", "num_classes",
                                                    "data_format", "precision", "xla", "device", "passes",
                                                    "compare", "output_json", "profile_dir", "strategy",
                                                    "cpu_replicas", "conv_algorithm", "per_layer")},
                  **counts, "image_size": workload.image_size, "data_format": workload.data_format},
    })
    if FLAGS.output_json:
        write_json_atomically(FLAGS.output_json, results)
        print(f"Wrote {FLAGS.output_json}")
    return 1 if "error" in results else 0
