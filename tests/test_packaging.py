"""The package as a new user gets it: BUILD.md's install block in a fresh virtual environment, from another folder.

A plain (not editable) ``pip install '.[cpu,train]'`` must ship ``benchmarks`` (``python -m benchmarks.vgg16``
works anywhere), the console scripts, and TensorBoard able to read a training run's events.
"""
import os
import re
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def install_block():
    with open(os.path.join(REPO, "BUILD.md"), encoding="utf-8") as f:
        (block,) = re.findall(r"^```sh install\n(.*?)^```", f.read(), re.S | re.M)
    return block


def run(command, cwd, returncode=0):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run(command, cwd=cwd, env={**env, "TF_CPP_MIN_LOG_LEVEL": "2"}, capture_output=True,
                            text=True, timeout=1200)
    assert result.returncode == returncode, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def test_metadata_has_one_version_and_the_license():
    sys.path.insert(0, REPO)
    import tfvgg
    setup_py = open(os.path.join(REPO, "setup.py"), encoding="utf-8").read()
    assert tfvgg.__version__ and tfvgg.__version__ not in setup_py   # read from tfvgg, not written twice
    assert "Apache License" in open(os.path.join(REPO, "LICENSE"), encoding="utf-8").read()
    assert "[build-system]" in open(os.path.join(REPO, "pyproject.toml"), encoding="utf-8").read()


def test_importing_tfvgg_changes_no_environment_variable():
    script = "import os; before = dict(os.environ); import tfvgg; print(sorted(set(os.environ.items()) ^ " \
             "set(before.items())))"
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.slow
def test_fresh_install_works_from_any_folder(tmp_path):
    source = tmp_path / "tfvgg-src"   # a clean copy: the build leaves nothing in the checkout
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    for name in files:
        if os.path.isfile(os.path.join(REPO, name)):
            os.makedirs(source / os.path.dirname(name), exist_ok=True)
            with open(os.path.join(REPO, name), "rb") as src, open(source / name, "wb") as dst:
                dst.write(src.read())
    run(["bash", "-e", "-c", install_block()], cwd=source)
    bin_dir, elsewhere = source / "venv" / "bin", tmp_path / "elsewhere"
    elsewhere.mkdir()
    # absl's --help prints the program's flags and exits with 1
    help_text = run([str(bin_dir / "python"), "-m", "benchmarks.vgg16", "--helpshort"], cwd=elsewhere, returncode=1)
    assert "--batch_size" in help_text and "--compare" in help_text
    assert "--batch_size" in run([str(bin_dir / "tfvgg-bench"), "--helpshort"], cwd=elsewhere, returncode=1)
    run([str(bin_dir / "tfvgg-train"), "--model=lenet", "--image_size=28", "--epochs=1", "--train_subset=64",
         "--model_dir=run"], cwd=elsewhere)
    read_events = ("from tensorboard.backend.event_processing.event_accumulator import EventAccumulator as E\n"
                   "for split in ('train', 'test'):\n"
                   "    e = E('run/tensorboard/' + split); e.Reload(); print(split, sorted(e.Tags()['tensors']))\n")
    tags = run([str(bin_dir / "python"), "-c", read_events], cwd=elsewhere)
    assert "train ['accuracy', 'images_per_sec', 'learning_rate', 'loss'" in tags
    assert "test ['accuracy', 'loss']" in tags
