"""Every Python block of the docs runs, in order, as one program; the generated tables are current."""
import os
import re
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": REPO}


def python_blocks(relative_path):
    with open(os.path.join(REPO, relative_path), encoding="utf-8") as f:
        return re.findall(r"```python\n(.*?)```", f.read(), re.S)


@pytest.mark.parametrize("doc", ["docs/tutorial.md", "docs/tf1_vs_tf2.md"])
def test_every_block_runs(doc, capsys):
    blocks = python_blocks(doc)
    assert len(blocks) >= 4
    namespace = {"__name__": "tutorial"}
    for number, block in enumerate(blocks, start=1):
        exec(compile(block, f"{doc} block {number}", "exec"), namespace)  # noqa: S102 - our own docs
    assert "Traceback" not in capsys.readouterr().out


def test_tutorial_prints_what_it_says():
    script = "\n".join(python_blocks("docs/tutorial.md"))
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=ENV, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for expected in ["(2, 32, 32, 64)\n1792", "['conv1_1/w', 'conv1_1/b'] 1792", "(2, 16, 16, 64)\n38720",
                     "(2,) (2, 10) (2, 10)\n32", "138,357,544 parameters, 15.47 G multiply-adds",
                     "7*7*512*4096 + 4096 = 102764544", "\n1\nTrue\n"]:
        assert expected in out, expected


def test_configuration_tables_are_generated_not_typed():
    result = subprocess.run([sys.executable, "docs/make_tables.py", "--check"], cwd=REPO, env=ENV,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("script", ["custom_net.py", "lenet_mnist.py", "vgg11_fashion_mnist.py",
                                    "alexnet_flowers.py"])
def test_example_runs_in_quick_mode(tmp_path, script):
    args = [sys.executable, os.path.join(REPO, "examples", script), "--quick"]
    if script != "custom_net.py":
        args.append(f"--model_dir={tmp_path}")
    result = subprocess.run(args, cwd=str(tmp_path), env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    if script == "custom_net.py":
        assert "epoch 1: mean train loss" in result.stdout
    else:
        with open(tmp_path / "metrics.csv") as f:
            assert len(f.read().strip().splitlines()) == 2   # header + the one quick epoch
        assert "Confusion matrix" in result.stdout
