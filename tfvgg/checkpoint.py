"""Checkpoints of a ``ParamStore`` (and anything else that trains with it) via ``tf.train.Checkpoint``.

TensorFlow writes a checkpoint's files first and then the ``checkpoint`` index
that names the latest one, so a crash mid-save leaves the previous checkpoint
as the latest. Restoring checks every variable's name and shape against the
checkpoint first and loads nothing if anything differs.
"""
import tensorflow as tf

from tfvgg.initializers import FromValues
from tfvgg.util import list_mismatches

_PREFIX = "params/_by_name/"
_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
_ORDER_KEY = "param_order" + _SUFFIX


class Checkpointer:
    """Save and restore ``p`` (plus ``extras`` such as an optimizer or a step counter) in ``directory``.

    Keeps the ``max_to_keep`` newest checkpoints.
    """

    def __init__(self, p, directory, max_to_keep=5, **extras):
        self.params = p
        # The checkpoint's index lists variables alphabetically; this keeps the store's layer order.
        self.param_order = tf.Variable("", trainable=False, name="param_order")
        self.checkpoint = tf.train.Checkpoint(params=p, param_order=self.param_order, **extras)
        self.manager = tf.train.CheckpointManager(self.checkpoint, directory, max_to_keep=max_to_keep)

    def save(self, step=None):
        """Write a checkpoint; returns its path prefix."""
        self.param_order.assign("\n".join(self.params.names))
        return self.manager.save(checkpoint_number=step)

    @property
    def latest(self):
        return self.manager.latest_checkpoint

    def restore(self, path=None):
        """Restore ``path`` (default: the latest); returns it, or None if there is none.

        An empty store gets its variables created from the checkpoint; a
        store with variables must match it name for name and shape for shape.
        """
        path = path or self.latest
        if path is None:
            return None
        stored = stored_param_shapes(path)
        if len(self.params) == 0:
            reader = tf.train.load_checkpoint(path)
            order = reader.get_tensor(_ORDER_KEY).decode().split("\n") if reader.has_tensor(_ORDER_KEY) else []
            for name in sorted(stored, key=lambda n: order.index(n) if n in order else len(order)):
                self.params.get_or_create(name, stored[name], FromValues(reader.get_tensor(_key(name))))
        else:
            check_matches(self.params, stored, path)
        # Partial restores are fine (e.g. evaluation restores params without the optimizer).
        self.checkpoint.restore(path).assert_existing_objects_matched().expect_partial()
        return path


def stored_param_shapes(path):
    """``{"conv1_1/w": (3, 3, 3, 64), ...}`` of the store saved in checkpoint ``path``."""
    shapes = {}
    for key, shape in tf.train.list_variables(path):
        if key.startswith(_PREFIX) and key.endswith(_SUFFIX):
            shapes[_unescape(key[len(_PREFIX):-len(_SUFFIX)])] = tuple(shape)
    if not shapes:
        raise ValueError(f"{path}: a checkpoint, but it holds no tfvgg ParamStore")
    return shapes


def check_matches(p, stored, path):
    """ValueError listing each variable the checkpoint lacks, has extra, or holds in another shape."""
    have = {name: tuple(v.shape) for name, v in zip(p.names, p.params)}
    problems = list_mismatches(have, stored, "checkpoint", "store")
    if problems:
        raise ValueError(f"{path} does not match the store; nothing was restored: " + "; ".join(problems))


def _key(name):
    return _PREFIX + _escape(name) + _SUFFIX


def _escape(name):
    # tf.train.Checkpoint's escaping of object names in keys: "." -> "..", "/" -> ".S".
    return name.replace(".", "..").replace("/", ".S")


def _unescape(escaped):
    out, i = [], 0
    while i < len(escaped):
        if escaped[i] == "." and i + 1 < len(escaped):
            out.append({".": ".", "S": "/"}.get(escaped[i + 1], "." + escaped[i + 1]))
            i += 2
        else:
            out.append(escaped[i])
            i += 1
    return "".join(out)
