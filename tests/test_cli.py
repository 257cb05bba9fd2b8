"""Flags defined once (tfvgg.cli): specs, configs generated from dataclasses, paths with ~, one-line errors."""
import dataclasses
import os
import subprocess
import sys

import pytest
from absl import flags

from tfvgg import cli
from tfvgg.train_config import TrainConfig

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parsed(config_class, *argv):
    values = flags.FlagValues()
    cli.define_config_flags(config_class, values)
    values(["program", *argv])
    return cli.config_from_flags(config_class, values)


def test_train_config_round_trips_through_its_flags():
    cfg = parsed(TrainConfig, "--model=vgg16", "--batch_size=8", "--precision=bf16", "--nodeterministic")
    assert cfg == dataclasses.replace(TrainConfig(), model="vgg16", batch_size=8, precision="bf16", deterministic=False)
    assert parsed(TrainConfig) == TrainConfig()   # every default survives the trip


def test_path_flags_expand_the_home_directory():
    cfg = parsed(TrainConfig, "--data_dir=~/mnist", "--model_dir=~/runs/x")
    home = os.path.expanduser("~")
    assert cfg.data_dir == os.path.join(home, "mnist") and cfg.model_dir == os.path.join(home, "runs/x")
    assert parsed(TrainConfig).data_dir is None


@pytest.mark.parametrize("argv,message", [
    (["--batch_size=0"], "batch_size"),
    (["--precision=fp64"], "fp32|bf16|fp16"),
    (["--conv_algorithm=fft"], "direct|winograd2|winograd4|auto"),
    (["--keep_prob=2"], "keep_prob"),
])
def test_bad_values_are_refused_at_parse_time(argv, message):
    with pytest.raises(flags.IllegalFlagValueError, match=message):
        parsed(TrainConfig, *argv)


def test_list_flags_take_a_subset_of_their_choices():
    values = flags.FlagValues()
    cli.FlagSpec("list", "Peers.", ("keras", "tf1")).define("compare", [], values)
    values(["program", "--compare=tf1,keras"])
    assert values.compare == ["tf1", "keras"]
    with pytest.raises(flags.IllegalFlagValueError, match="--compare takes a comma-separated subset of keras, tf1"):
        values(["program", "--compare=torch"])


def test_every_shared_choice_list_is_the_one_its_library_module_defines():
    from tfvgg.ops import CONV_ALGORITHMS
    from tfvgg.precision import PRECISIONS
    from tfvgg.configs import network_names
    assert cli.PRECISION.choices == tuple(PRECISIONS) and cli.CONV_ALGORITHM.choices == CONV_ALGORITHMS
    assert cli.MODEL.choices == tuple(network_names())
    fields = {f.name: f.metadata["flag"] for f in dataclasses.fields(TrainConfig)}
    assert fields["precision"] is cli.PRECISION and fields["model"] is cli.MODEL


def test_help_lists_the_programs_own_flags():
    result = subprocess.run([sys.executable, "-m", "tfvgg.evaluate", "--helpshort"], cwd=REPO, capture_output=True,
                            text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert "--model_dir" in result.stdout and "Run directory" in result.stdout   # absl's help exits with 1
