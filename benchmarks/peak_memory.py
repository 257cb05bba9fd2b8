"""Peak memory of each contestant alone, each in a process of its own: ``python -m benchmarks.peak_memory``.

One process per contestant (tfvgg with each asked convolution algorithm, keras, tf1; onnxruntime and openvino with
``--pass=forward``) builds it, runs
``--num_batches`` batches of one pass and reports its peak RSS; the parent prints them with the ratio to keras.
A process measures only itself, so the contestants' memory does not add up as in the benchmark's shared process.
"""
import dataclasses
import json
import os
import subprocess
import sys

from absl import flags

from benchmarks import cnn, contestants, measure, timing
from tfvgg import cli, ops
from tfvgg.configs import get_network
from tfvgg.cli import FlagSpec

FLAGS = flags.FLAGS
CONTESTANTS = ("keras", "tf1", "onnxruntime", "openvino", *(f"tfvgg:{a}" for a in ops.CONV_ALGORITHMS))


def measure_alone(name, workload, pass_name, num_batches):
    """Peak RSS bytes of this process after ``num_batches`` of ``pass_name`` by contestant ``name``."""
    build = measure.PEERS.get(name, contestants.tfvgg_passes)
    run = build(workload, [pass_name])[pass_name]
    for _ in range(num_batches):
        run()
    return timing.peak_memory_bytes("CPU:0")[0]


def child_command(contestant, algorithm):
    """The command line of one child: this module, the same flags, one contestant."""
    args = [a for a in sys.argv[1:] if not a.startswith(("--contestants", "--child"))]
    return [sys.executable, "-m", "benchmarks.peak_memory", *args, f"--child={contestant}:{algorithm}"]


def main(argv):
    cli.no_positional_arguments(argv)
    net = get_network(FLAGS.model)
    w = contestants.Workload(model=net.name, batch_size=FLAGS.batch_size, image_size=net.input_shape[0],
                             channels=net.input_shape[2], num_classes=net.num_classes, precision=FLAGS.precision,
                             micro_batch_size=FLAGS.micro_batch_size)
    pass_name = cnn.PASS_FLAG_VALUES[FLAGS["pass"].value]
    if FLAGS.child:   # one contestant, in this process: print one JSON line for the parent
        name, algorithm = FLAGS.child.split(":")
        peak = measure_alone(name, dataclasses.replace(w, conv_algorithm=algorithm), pass_name, FLAGS.num_batches)
        print(json.dumps({"peak_bytes": peak}))
        return 0
    peaks = {}
    for entry in FLAGS.contestants:
        name, _, algorithm = entry.partition(":")
        done = subprocess.run(child_command(name, algorithm or "direct"), capture_output=True, text=True,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        lines = [l for l in done.stdout.splitlines() if l.startswith('{"peak_bytes"')]
        if done.returncode or not lines:
            cli.fail(f"{entry}: the child process failed (exit {done.returncode}): "
                     f"{(done.stderr.strip().splitlines() or ['no output'])[-1]}", argv)
        peaks[entry] = json.loads(lines[-1])["peak_bytes"]
        print(f"{entry:<20} {peaks[entry] / 2 ** 20:>9,.0f} MiB peak RSS"
              + (f"  ({peaks[entry] / peaks['keras']:.2f}x keras)" if "keras" in peaks else ""), flush=True)
    return 0


def define_flags():
    cli.MODEL.define("model", "D")
    cli.BATCH_SIZE.define("batch_size", 32)
    cli.MICRO_BATCH_SIZE.define("micro_batch_size", 0)   # tfvgg's contestants only
    cli.PRECISION.define("precision", "fp32")
    FlagSpec("enum", "The pass each process runs.", tuple(cnn.PASS_FLAG_VALUES)).define("pass", "forward-backward")
    FlagSpec("integer", "Batches each process runs (the first compiles).", lower=1).define("num_batches", 2)
    FlagSpec("list", "Contestants, keras first for the ratios.", CONTESTANTS).define(
        "contestants", ["keras", "tfvgg:direct", "tfvgg:auto"])
    FlagSpec("string", "Internal: the one contestant a child process measures.").define("child", None)


if __name__ == "__main__":
    cli.run(main, define_flags)
