"""Measuring: each pass of tfvgg and its peers timed interleaved in one process; returns plain data.

Progress lines are printed while timing (a run takes minutes); the tables of the
final report are ``benchmarks.report``'s, over what ``run_benchmark`` returns.
"""
import dataclasses
import datetime
import time

import tensorflow as tf

from benchmarks import contestants, real_data, results, timing
from tfvgg import autotune
from tfvgg.precision import compute_dtype

PEERS = {"keras": contestants.keras_passes, "tf1": contestants.tf1_passes, "direct": contestants.direct_passes,
         "onnxruntime": contestants.onnxruntime_passes, "openvino": contestants.openvino_passes}
PASS_TITLES = {"forward": "Forward", "forward_backward": "Forward-backward", "train": "Train step"}
ONE_REPLICA = "tfvgg_1replica"
PROBE_SIZE = 4096   # the matmul that measures the peak: PROBE_SIZE^2 x 3 matrices in memory
TUNED_PASS = {"forward": "inference", "forward_backward": "training", "train": "training"}


def run_benchmark(workload, model_summary, counts, passes, peers, display_every, print_fn=print,
                  probe_size=PROBE_SIZE, profile_dir=None, strategy=None, tuning_budget=None, data_dir=None):
    """Time ``passes`` for tfvgg and ``peers``; returns the results dict (fields: BUILD.md, "Results as data").

    ``data_dir``: tfvgg is fed by the input pipeline over the TFRecord shards there (``benchmarks.real_data``)
    and timed beside itself on synthetic images; the pipeline's own rate goes to ``results["input"]``.

    ``counts``: ``{"num_batches": N, "num_warmup_batches": W}``. With a multi-replica ``strategy``, tfvgg runs
    data-parallel on the global batch and once more on one replica's share alone, for the scaling efficiency;
    the peers (one device each) are then skipped. Running out of memory ends the run with ``results["error"]``.
    """
    strategy = strategy or tf.distribute.get_strategy()
    device = workload.device.lstrip("/")
    print_fn(f"Probing the {device} matmul peak in {workload.precision} ...")
    peak = timing.matmul_peak_flops(compute_dtype(workload.precision), n=probe_size, device=workload.device)
    print_fn(f"  peak {peak / 1e12:.3f} TFLOP/s (best of 5 {probe_size}x{probe_size} matmuls)")
    out = {"peak_tflops": peak / 1e12, "compare": {}, "skipped": {}, "replicas": strategy.num_replicas_in_sync}
    out.update(bf16_hint(workload, peak, probe_size, print_fn))
    try:   # tuning and building allocate too: the variables, the images, each layer's candidates
        tuning = tune_convolutions(workload, passes, strategy.num_replicas_in_sync, print_fn, tuning_budget)
        inputs = real_data.image_batches(data_dir, workload) if data_dir else None
        runs, batch_of, out["skipped"] = build_contestants(workload, passes, peers, strategy, print_fn,
                                                           inputs and inputs[0])
    except (tf.errors.ResourceExhaustedError, MemoryError):
        out["error"] = out_of_memory(device, "while building the contestants", workload.batch_size)
        print_fn(out["error"])
        return out
    out.update({"autotune": tuning} if tuning else {})
    flops_per_image = {"forward": 2.0 * model_summary.total_mult_adds}
    flops_per_image["forward_backward"] = flops_per_image["train"] = 3 * flops_per_image["forward"]
    for pass_name in passes:
        try:
            timings, memory = time_pass(pass_name, runs, workload, counts, display_every, print_fn)
        except tf.errors.ResourceExhaustedError:
            out["error"] = out_of_memory(device, f"during {PASS_TITLES[pass_name].lower()}", workload.batch_size)
            print_fn(out["error"])
            break
        entries = {name: results.pass_entry(t, batch_of[name], flops_per_image[pass_name] * batch_of[name], peak)
                   for name, t in timings.items()}
        for name, entry in entries.items():
            print_fn(f"  {datetime.datetime.now():%Y-%m-%d %H:%M:%S}: {name} "
                     f"{timings[name].describe(PASS_TITLES[pass_name])}, {entry['images_per_sec']:.2f} images/s, "
                     f"{entry['tflops']:.3f} TFLOP/s, {entry['peak_fraction']:.2f} of peak")
        record_pass(out, pass_name, entries, memory, print_fn)
    if inputs and "error" not in out:
        print_fn("Timing the input pipeline alone ...")
        rate = real_data.pipeline_rate(inputs[0], workload.batch_size)
        plain = real_data.pipeline_rate(real_data.image_batches(data_dir, workload, augment=False)[0],
                                        workload.batch_size)
        for line in real_data.input_record(out, rate, plain, passes, data_dir, inputs[1]):
            print_fn(line)
    if profile_dir and "error" not in out:
        profile(runs["tfvgg"], passes, profile_dir)
        print_fn(f"Profile of 2 batches per pass written to {profile_dir} (tensorboard --logdir {profile_dir})")
    return out


def bf16_hint(workload, fp32_peak, probe_size, print_fn=print):
    """On an AMX CPU running fp32: the bf16 matmul peak too, and one line saying how much faster it is;
    ``{"bf16_peak_tflops"}`` or ``{}``."""
    if workload.precision != "fp32" or not workload.device.upper().startswith("/CPU") or \
            "amx_bf16" not in autotune.machine_fingerprint()["isa"]:
        return {}
    bf16_peak = timing.matmul_peak_flops(compute_dtype("bf16"), n=probe_size, device=workload.device)
    print_fn(f"  this CPU has AMX: the bf16 matmul peak is {bf16_peak / 1e12:.3f} TFLOP/s, "
             f"{bf16_peak / fp32_peak:.1f}x fp32's; --precision=bf16 runs the convolutions up to that much faster")
    return {"bf16_peak_tflops": bf16_peak / 1e12}


def out_of_memory(device, when, batch_size):
    """The one-line error of a run that ran out of memory ``when`` ("during forward", ...)."""
    half = max(1, batch_size // 2)
    return (f"out of memory on {device} {when} with --batch_size={batch_size}; try --batch_size={half}, "
            f"--micro_batch_size={half} (gradients) or --precision=bf16/fp16")


def tune_convolutions(workload, passes, replicas=1, print_fn=print, budget_seconds=None):
    """Tune auto's convolutions before anything is timed (``tfvgg.autotune``); the results' "autotune" record.

    None unless ``--conv_algorithm=auto``; ``{"enabled": False, "why"}`` where the fixed rule decides. Past
    ``budget_seconds`` (None: no limit) the workloads left keep the rule until a later run tunes them.
    """
    if workload.conv_algorithm != "auto":
        return None
    if workload.device.startswith("/GPU") or not autotune.enabled():
        why = ("on a GPU cuDNN picks its own algorithms" if workload.device.startswith("/GPU")
               else f"tuning is off ({autotune.ENV_ENABLE}=0)")
        print_fn(f"auto: winograd.choose's fixed rule decides; {why}")
        return {"enabled": False, "why": why}
    batch, micro = workload.batch_size // replicas, workload.micro_batch_size   # both per replica
    # training's convolutions see one micro-batch at a time
    batches = {TUNED_PASS[p]: micro if TUNED_PASS[p] == "training" and 0 < micro < batch else batch for p in passes}
    cache = autotune.current_cache()
    print_fn(f"Tuning auto's convolutions for {', '.join(f'{p} at batch {b}' for p, b in sorted(batches.items()))} "
             f"(cache: {cache.path}) ...")
    start, rows = time.perf_counter(), []
    for pass_name, pass_batch in sorted(batches.items()):   # inference first: training reuses its timings
        left = None if budget_seconds is None else max(budget_seconds - (time.perf_counter() - start), 1e-9)
        rows += autotune.tune_network(workload.model, pass_batch, workload.dtype, workload.data_format, [pass_name],
                                      workload.image_size, print_fn, left)
    seconds = time.perf_counter() - start
    tuned = sum(row["tuned"] and not row["reused"] for row in rows)
    reused = sum(row["reused"] for row in rows)
    left = len(rows) - tuned - reused
    print_fn(f"  {tuned} workloads tuned and {reused} read from the cache in {seconds:.1f} s"
             + (f"; {left} left to the fixed rule (--tuning_budget={budget_seconds:g} s spent; the next run "
                "tunes them, --tuning_budget=0 tunes all)" if left else ""))
    return {"enabled": True, "cache": cache.path, "seconds": seconds, "tuned": tuned, "reused": reused,
            "left_to_rule": left, "budget_seconds": budget_seconds, "layers": rows}


def build_contestants(workload, passes, peers, strategy, print_fn=print, inputs=None):
    """(``{name: {pass: run}}``, ``{name: images per batch}``, ``{peer: why skipped}``); tfvgg comes first.

    ``inputs`` (a dataset of image batches): tfvgg is fed by it, and "synthetic" is tfvgg on synthetic images.
    """
    builders = {"tfvgg": lambda w, p: contestants.tfvgg_passes(w, p, strategy, inputs)}
    batch_of = {"tfvgg": workload.batch_size}
    if inputs is not None:
        builders["synthetic"] = lambda w, p: contestants.tfvgg_passes(w, p)
        batch_of["synthetic"] = workload.batch_size
    skipped = {}
    replicas = strategy.num_replicas_in_sync
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
    return runs, batch_of, skipped


def time_pass(pass_name, runs, workload, counts, display_every, print_fn=print):
    """``({name: timing.Timing}, (peak memory bytes, what it measures))`` of one pass, contestants interleaved."""
    device = workload.device.lstrip("/")
    timing.reset_peak_memory(device)
    contenders = {name: run[pass_name] for name, run in runs.items() if pass_name in run}   # engines: forward
    print_fn(f"{PASS_TITLES[pass_name]}: {counts['num_warmup_batches']} warm-up + {counts['num_batches']} timed "
             f"batches of {workload.batch_size}"
             + (f" ({', '.join(contenders)} interleaved)" if len(contenders) > 1 else ""))
    timings = timing.time_contestants(contenders, counts["num_batches"], counts["num_warmup_batches"],
                                      log_every=display_every, print_fn=print_fn, label="  ")
    return timings, timing.peak_memory_bytes(device)


def record_pass(out, pass_name, entries, memory, print_fn=print):
    """File one pass's entries into ``out``: tfvgg's, the peers' with their ratio, the scaling of replicas."""
    memory_bytes, memory_kind = memory
    replicas = out["replicas"]
    tfvgg = out[pass_name] = {**entries["tfvgg"], "peak_memory_bytes": memory_bytes,
                              "peak_memory_kind": memory_kind}
    if replicas > 1:
        tfvgg["images_per_sec_per_replica"] = tfvgg["images_per_sec"] / replicas
    for name, entry in entries.items():
        if name == ONE_REPLICA:
            total, one = tfvgg["images_per_sec"], entry["images_per_sec"]
            scaling = out.setdefault("scaling", {})[pass_name] = {
                "replicas": replicas, "images_per_sec": total, "images_per_sec_per_replica": total / replicas,
                "one_replica_images_per_sec": one, "efficiency": total / (replicas * one)}
            print_fn(f"  scaling over {replicas} replicas: {total:.2f} images/s in all, "
                     f"{scaling['images_per_sec_per_replica']:.2f} per replica, {one:.2f} on one replica alone: "
                     f"efficiency {scaling['efficiency']:.2f}")
        elif name != "tfvgg":
            entry["ratio"] = tfvgg["images_per_sec"] / entry["images_per_sec"]
            out["compare"].setdefault(name, {})[pass_name] = entry
    print_fn(f"  peak memory ({memory_kind}): {memory_bytes / 2 ** 20:,.0f} MiB")


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
