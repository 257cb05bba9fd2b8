"""Checkpoints restore whole or refuse whole."""
import os

import numpy as np
import pytest
import tensorflow as tf

import tfvgg
from tfvgg import checkpoint


def built(config="A", num_classes=10, seed=0, size=32):
    p = tfvgg.ParamStore(seed=seed)
    tfvgg.inference_op(tf.zeros([1, size, size, 3]), p, config=config, num_classes=num_classes)
    return p


def test_round_trip_into_an_empty_and_a_built_store(tmp_path):
    p = built(seed=1)
    path = tfvgg.Checkpointer(p, str(tmp_path)).save()
    empty = tfvgg.ParamStore()
    assert tfvgg.Checkpointer(empty, str(tmp_path)).restore() == path
    other = built(seed=2)
    tfvgg.Checkpointer(other, str(tmp_path)).restore(path)
    for restored in (empty, other):
        assert restored.names == p.names
        for a, b in zip(p.params, restored.params):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_nothing_to_restore_returns_none(tmp_path):
    assert tfvgg.Checkpointer(built(), str(tmp_path)).restore() is None


def test_keeps_the_newest_n(tmp_path):
    ckpt = tfvgg.Checkpointer(built(), str(tmp_path), max_to_keep=2)
    paths = [ckpt.save(step) for step in (10, 20, 30)]
    assert ckpt.latest == paths[-1] and paths[-1].endswith("ckpt-30")
    assert [os.path.basename(p) for p in ckpt.manager.checkpoints] == ["ckpt-20", "ckpt-30"]
    assert not any(f.startswith("ckpt-10") for f in os.listdir(tmp_path))


def test_a_different_configuration_is_refused_and_nothing_changes(tmp_path):
    path = tfvgg.Checkpointer(built("A"), str(tmp_path)).save()
    q = built("B", seed=5)
    before = [v.numpy() for v in q.params]
    with pytest.raises(ValueError) as error:
        tfvgg.Checkpointer(q, str(tmp_path)).restore(path)
    message = str(error.value)
    assert "nothing was restored" in message
    assert "missing conv1_2/w" in message   # the store has it, the checkpoint not
    for a, b in zip(before, q.params):
        np.testing.assert_array_equal(a, b.numpy())


def test_a_different_shape_is_named(tmp_path):
    path = tfvgg.Checkpointer(built("A", num_classes=10), str(tmp_path)).save()
    with pytest.raises(ValueError, match=r"fc8/w: checkpoint \(4096, 10\), store \(4096, 5\)"):
        tfvgg.Checkpointer(built("A", num_classes=5), str(tmp_path)).restore(path)


def test_a_checkpoint_without_a_store(tmp_path):
    path = tf.train.Checkpoint(step=tf.Variable(3)).save(str(tmp_path / "other"))
    with pytest.raises(ValueError, match="holds no tfvgg ParamStore"):
        tfvgg.Checkpointer(built(), str(tmp_path)).restore(path)


def test_names_with_dots_and_slashes_survive_escaping():
    for name in ["conv1_1/w", "block.1/w", "a..b/c.S/d"]:
        assert checkpoint._unescape(checkpoint._escape(name)) == name
