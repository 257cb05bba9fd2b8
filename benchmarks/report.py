"""Reporting: the benchmark's printed report and markdown tables, all read off results dicts.

    python -m benchmarks.report RUN.json [RUN.json ...]            # a markdown table of the runs
    python -m benchmarks.report --update README.md docs/measurements.md
    python -m benchmarks.report --check README.md docs/measurements.md

``--update`` regenerates every table of a markdown file that sits between
``<!-- benchmark-table: a.json b.json -->`` and ``<!-- /benchmark-table -->``
from the files it names (relative to the current folder); ``--check`` exits 1
naming the first stale table instead.
"""
import re

from absl import flags

import tfvgg
from benchmarks.results import load_results
from tfvgg import cli
from tfvgg.util import atomic_write

PASSES = ("forward", "forward_backward", "train")
PEER_ORDER = ("keras", "tf1", "direct", "onnxruntime", "openvino", "synthetic")
WITHOUT_PICKS = " (without picks)"   # a benchmark-table marker's ending: the runs' table only
TABLE_BLOCK = re.compile(r"(<!-- benchmark-table: (?P<files>[^>]*?) -->\n)(?P<table>.*?)(<!-- /benchmark-table -->)",
                         re.S)


def header_lines(workload, model_summary, device_name, tf_version, cpu=None):
    """What the benchmark prints before measuring: model, device (``cpu``: ``autotune.machine_fingerprint()``'s
    ISA flags and oneDNN setting, for a CPU run), workload, cost per image."""
    w = workload
    lines = [f"tfvgg benchmark: {model_summary.description or model_summary.network}, TensorFlow {tf_version}",
             f"  device {w.device.lstrip('/')} ({device_name}); batch {w.batch_size}; image {w.image_size}x"
             f"{w.image_size}x{w.channels}; {w.data_format}; {w.precision}; XLA {'on' if w.xla else 'off'}; "
             f"convolutions {w.conv_algorithm}"
             + (f"; gradients in micro-batches of {w.micro_batch_size}" if w.micro_batch_size else ""),
             *([cpu_features_line(cpu)] if cpu else []),
             f"  {model_summary.total_params:,} parameters; {model_summary.total_mult_adds / 1e9:.2f} G multiply-adds "
             f"per image forward (forward-backward counted as 3x)"]
    if w.conv_algorithm != "direct":
        lines.append("  TFLOP/s and 'of peak' count the direct convolution's multiply-adds for every pass; Winograd "
                     "layers do fewer, so 'of peak' can pass 1 (--conv_algorithm=direct for the kernels' own rate)")
    return lines


MATRIX_FEATURES = {"avx512f": "AVX-512", "avx512_bf16": "AVX512_BF16", "amx_bf16": "AMX"}


def cpu_features_line(cpu):
    """``  CPU features: AVX2, FMA, AVX-512; no AVX512_BF16, AMX; oneDNN on`` from a machine fingerprint, with the
    environment that caps or sizes the kernels where set (``; ONEDNN_MAX_CPU_ISA=AVX2``)."""
    isa = set(cpu.get("isa", ()))
    has = [name.upper() for name in ("avx2", "fma") if name in isa]
    has += [label for flag, label in MATRIX_FEATURES.items() if flag in isa]
    lacks = [label for flag, label in MATRIX_FEATURES.items() if flag not in isa]
    onednn = {True: "oneDNN on", False: "oneDNN off (TensorFlow's default on this CPU; TF_ENABLE_ONEDNN_OPTS=1 "
                                        "turns it on)", None: "oneDNN unknown"}[cpu.get("onednn")]
    return (f"  CPU features: {', '.join(has) or 'none of AVX2, FMA'}"
            + (f"; no {', '.join(lacks)}" if lacks else "") + f"; {onednn}"
            + "".join(f"; {name}={value}" for name, value in sorted(cpu.get("settings", {}).items())))


def results_table(results, passes):
    """The final text table: one row per pass and contestant, mean +/- sd, rates and tfvgg's ratio to each peer."""
    lines = [f"{'pass':<18} {'who':<11} {'s/batch (mean +/- sd)':>22} {'images/s':>9} {'TFLOP/s':>8} "
             f"{'of peak':>7} {'tfvgg/peer':>10}"]
    for pass_name in passes:
        if pass_name not in results:
            continue
        rows = [("tfvgg", results[pass_name])] + [(peer, by_pass[pass_name])
                                                  for peer, by_pass in results["compare"].items()
                                                  if pass_name in by_pass]
        for who, e in rows:
            ratio = f"{e['ratio']:.2f}x" if "ratio" in e else ""
            lines.append(f"{pass_name:<18} {who:<11} {e['seconds_per_batch_mean']:>12.3f} +/- "
                         f"{e['seconds_per_batch_sd']:<6.3f} {e['images_per_sec']:>9.2f} {e['tflops']:>8.3f} "
                         f"{e['peak_fraction']:>7.2f} {ratio:>10}")
    lines += [f"  {peer}: skipped ({reason})" for peer, reason in results["skipped"].items()]
    return "\n".join(lines)


def run_label(results):
    """``VGG-16 fp32 auto, batch 8`` from a result's model and flags."""
    f = results["flags"]
    name = (tfvgg.get_network(results["model"]).description or results["model"]).split(",")[0]
    return f"{name} {f['precision']} {f['conv_algorithm']}, batch {f['batch_size']}"


def markdown_table(runs):
    """A markdown table of ``runs`` (results dicts): a row per run and pass, a column per peer present."""
    peers = [p for p in PEER_ORDER if any(p in r["compare"] for r in runs)]
    lines = ["| run | pass | tfvgg s/batch | " + "".join(f"{p} s/batch | " for p in peers)
             + "tfvgg images/s | TFLOP/s | of peak | " + "".join(f"tfvgg / {p} | " for p in peers),
             "|" + "---|" * (6 + 2 * len(peers))]
    for r in runs:
        for pass_name in (p for p in PASSES if p in r):
            tfvgg_entry = r[pass_name]
            entries = [r["compare"].get(p, {}).get(pass_name) for p in peers]
            lines.append(f"| {run_label(r)} | {pass_name.replace('_', '-')} | {_seconds(tfvgg_entry)} | "
                         + "".join(f"{_seconds(e)} | " for e in entries)
                         + f"{tfvgg_entry['images_per_sec']:.2f} | {tfvgg_entry['tflops']:.3f} | "
                           f"{tfvgg_entry['peak_fraction']:.2f} | "
                         + "".join(f"{e['ratio']:.2f}x | " if e else "- | " for e in entries))
    lines = [line.rstrip() for line in lines]
    machines = sorted({f"{r['device_name']}, TensorFlow {r['tf_version']}, tfvgg {r['tfvgg_version']}" for r in runs})
    dates = sorted(r["timestamp"][:10] for r in runs)
    lines.append("")
    lines.append(f"Measured on {'; '.join(machines)}; {dates[0]}" + (f" to {dates[-1]}" if dates[-1] != dates[0]
                                                                      else "") + ".")
    return "\n".join(lines)


def autotune_table(run):
    """auto's measured pick per layer workload and pass, with its speed-up over direct; "" if the run has none."""
    record = run.get("autotune") or {}
    if not record.get("layers"):
        return ""
    how = (f"{record['tuned']} workloads tuned in {record['seconds']:.0f} s" if record["tuned"]
           else f"all {record['reused']} workloads read from the tuning cache" if not record.get("left_to_rule")
           else f"{record['reused']} workloads read from the tuning cache")
    if record.get("left_to_rule"):
        how += f", {record['left_to_rule']} left to the fixed rule"
    lines = [f"auto's picks in {run_label(run)} ({how}; times of each candidate in the file):", "",
             "| layers | input, channels | pass | pick | speed-up vs direct | candidates timed |",
             "|---|---|---|---|---|---|"]
    for row in record["layers"]:
        lines.append(f"| {', '.join(row['layers'])} | {row['workload'].split(' batch')[0]} | {row['pass']} | "
                     f"{row['choice']} | {_speedup(row)} | {_timed(row)} |")
    return "\n".join(lines)


def _speedup(row):
    """A tuning row's speed-up over direct; marked with the batch it was measured at if a screen's."""
    if not row.get("tuned", bool(row["seconds"])):
        return "(rule)"
    batch, full_batch = row.get("speedup_batch"), int(row["workload"].split(" batch ")[1].split()[0])
    return f"{row['speedup_vs_direct']:.2f}x" + (f" (batch {batch})" if batch and batch != full_batch else "")


def _timed(row):
    """How many candidates a tuning row timed: on the full batch, and on a screen's sub-batch first."""
    screen = row.get("screen")
    return f"{len(row['seconds'])}" + (f" + {len(screen['seconds'])} at batch {screen['batch']}" if screen else "")


def _seconds(entry):
    return f"{entry['seconds_per_batch_mean']:.3f} +/- {entry['seconds_per_batch_sd']:.3f}" if entry else "-"


def regenerate(text):
    """``text`` with every benchmark-table block rebuilt from the result files it names: the runs' table, then
    each run's tuning picks unless the marker ends with ``(without picks)``."""
    def table(match):
        files = match.group("files")
        with_picks = not files.endswith(WITHOUT_PICKS)
        runs = [load_results(path) for path in files.removesuffix(WITHOUT_PICKS).split()]
        if not runs:
            raise ValueError("a benchmark-table marker names no result file")
        tables = [markdown_table(runs)] + ([t for t in map(autotune_table, runs) if t] if with_picks else [])
        return match.group(1) + "\n\n".join(tables) + "\n" + match.group(4)
    if text.count("<!-- benchmark-table:") != len(TABLE_BLOCK.findall(text)):
        raise ValueError("a <!-- benchmark-table: ... --> marker has no <!-- /benchmark-table --> after it")
    return TABLE_BLOCK.sub(table, text)


def update_docs(paths, check=False):
    """Rewrite the tables of markdown files ``paths``; with ``check``, return the first stale path instead."""
    for path in paths:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        new = regenerate(text)
        if new != text:
            if check:
                return path
            atomic_write(path, new)
    return None


def define_flags():
    cli.FlagSpec("boolean", "Rewrite the benchmark tables of these markdown files.").define("update", False)
    cli.FlagSpec("boolean", "Exit 1 if a benchmark table of these markdown files is stale.").define("check", False)


def main(argv):
    paths = argv[1:]
    if not paths:
        cli.fail("name result files (.json), or markdown files with --update / --check", argv)
    try:
        if flags.FLAGS.update or flags.FLAGS.check:
            stale = update_docs(paths, check=flags.FLAGS.check)
            if stale:
                print(f"{stale}: a benchmark table is out of date; run python -m benchmarks.report --update {stale}")
                return 1
            return 0
        runs = [load_results(path) for path in paths]
        print("\n\n".join([markdown_table(runs)] + [t for t in map(autotune_table, runs) if t]))
    except (OSError, ValueError, KeyError) as e:
        cli.fail(e if not isinstance(e, KeyError) else f"a result file lacks the field {e}", argv)
    return 0


def run():
    """``tfvgg-report``: the console script."""
    cli.run(main, define_flags)


if __name__ == "__main__":
    run()
