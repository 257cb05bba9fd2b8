"""Every shell block of README.md, BUILD.md and docs/*.md runs as written, with small flags where real ones take long.

Each ```sh block runs as one bash script (set -e) in a sandbox: a copy of the docs, a HOME holding small
stand-ins for the reader's data (MNIST/Fashion-MNIST IDX files, a flower folder), image files and a VGG-16
weight file shaped for 32x32 images, the package's commands on PATH. Commands that would take minutes get small
flags appended (absl lets a later flag override an earlier one); ``make bench`` runs with small BENCH_FLAGS;
``make test`` is only dry-run here (CI runs it); TensorBoard is started on 127.0.0.1 and stopped once it serves.
Blocks fenced ```sh install are run by tests/test_packaging.py in a fresh virtual environment.
"""
import glob
import os
import re
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ["README.md", "BUILD.md",
        *sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "docs", "*.md")))]
BENCH_SMALL = "--batch_size=2 --image_size=64 --num_batches=1 --num_warmup_batches=0"
SMALL_FLAGS = [   # (command pattern, flags appended to it)
    (r"-m benchmarks\.vgg1[69]\b|\btfvgg-bench", BENCH_SMALL),
    (r"-m benchmarks\.conv_layers\b|\btfvgg-conv-layers\b", "--batch_size=1 --image_size=32 --repeats=1"),
    (r"-m tfvgg\.train\b|\btfvgg-train\b", "--epochs=1 --train_subset=64 --batch_size=16 --image_size=64 "
                                         "--log_every=1000"),
    (r"-m tfvgg\.(classify|export)\b|\btfvgg-(classify|export)\b", "--image_size=32"),
    (r"-m benchmarks\.make_images\b", "--count=20"),
]
PRELUDE = r"""
pids=()
tensorboard() {   # serve on loopback until it says where, then stop
  command tensorboard "$@" --host=127.0.0.1 --port=0 > tensorboard.log 2>&1 &
  local pid=$! i
  for i in $(seq 120); do grep -q "http://127.0.0.1" tensorboard.log && break; sleep 0.5; done
  kill "$pid"; wait "$pid" || true
  grep -q "http://127.0.0.1" tensorboard.log || { cat tensorboard.log >&2; return 1; }
}
"""


def shell_blocks():
    """(doc, number, script) of every ```sh block that is not an install block."""
    blocks = []
    for doc in DOCS:
        with open(os.path.join(REPO, doc), encoding="utf-8") as f:
            found = re.findall(r"^```sh( install)?\n(.*?)^```", f.read(), re.S | re.M)
        blocks += [(doc, n, text) for n, (install, text) in enumerate(found, start=1) if not install]
    return blocks


def small(script, ports):
    """The block as it will run: continuations joined, comments dropped, small flags, free ports, waited jobs."""
    lines = []
    for line in script.replace("\\\n", " ").splitlines():
        command = re.sub(r"\s+#.*$", "", line).strip()
        if not command:
            continue
        background = command.endswith("&")
        command = command.rstrip("&").strip()
        if command == "make test":
            command = "make -n -o install test"   # CI runs it; here only its recipe is checked
        elif command == "make bench":
            command = f'make -o install bench PY="{sys.executable}" BENCH_FLAGS="{BENCH_SMALL}"'
        elif command == "wait":
            command = 'for pid in "${pids[@]}"; do wait "$pid"; done'
        for pattern, flags in SMALL_FLAGS:
            if re.search(pattern, command):
                command += " " + flags
        for old, new in ports.items():
            command = command.replace(old, new)
        lines.append(command + (' & pids+=("$!")' if background else ""))
    return PRELUDE + "\n".join(lines) + "\n"


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [str(s.getsockname()[1]) for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """A folder laid out as a reader's: the docs, the data the docs name, the package's commands on PATH."""
    root = tmp_path_factory.mktemp("reader")
    for name in ("README.md", "BUILD.md", "Makefile", "docs"):
        source = os.path.join(REPO, name)
        (shutil.copytree if os.path.isdir(source) else shutil.copy)(source, root / name)
    venv_bin = root / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (venv_bin / "python").chmod(0o755)
    home = root / "home"
    make_reader_data(home, root)
    env = {**os.environ, "HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": REPO,
           "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    return root, env


def make_reader_data(home, cwd):
    """~/mnist, ~/fashion (IDX), ~/17flowers (a folder per class), cat.jpg, dog.png, and Keras VGG-16 weights."""
    from tests.test_data import make_folder, write_mnist
    from tests.test_weights import write_keras2_h5
    import keras

    for name in ("mnist", "fashion"):
        os.makedirs(home / name)
        write_mnist(str(home / name), n_train=64, n_test=16)
    make_folder(str(home / "17flowers"), classes=("daisy", "tulip"), per_class=6, size=(80, 96))
    pixels = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    tf.io.write_file(str(cwd / "cat.jpg"), tf.io.encode_jpeg(pixels))
    tf.io.write_file(str(cwd / "dog.png"), tf.io.encode_png(pixels[::-1]))
    model = keras.applications.VGG16(weights=None, input_shape=(32, 32, 3))   # the published file's layout
    write_keras2_h5(model, str(cwd / "vgg16_weights_tf_dim_ordering_tf_kernels.h5"))


def test_every_doc_has_its_blocks_found():
    docs = {doc for doc, _, _ in shell_blocks()}
    assert {"README.md", "BUILD.md"} <= docs
    assert len(shell_blocks()) >= 10


def test_ci_runs_the_readme_test_command():
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        first_block = re.search(r"```sh\n(.*?)```", f.read(), re.S).group(1)
    commands = [re.sub(r"\s+#.*$", "", line).strip() for line in first_block.splitlines()]
    assert commands[:2] == ["make bench", "make test"]
    with open(os.path.join(REPO, ".ci", "run"), encoding="utf-8") as f:
        assert re.search(r"^must_pass make test(\s|$)", f.read(), re.M)


@pytest.mark.slow
@pytest.mark.parametrize("doc,number,script", [pytest.param(*block, id=f"{block[0]}:{block[1]}")
                                               for block in shell_blocks()])
def test_shell_block_runs(sandbox, doc, number, script):
    root, env = sandbox
    ports = dict(zip(("12345", "12346"), free_ports(2)))
    result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", small(script, ports)], cwd=str(root), env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{doc} block {number} failed:\n{script}\n{result.stdout[-3000:]}\n" \
                                   f"{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
