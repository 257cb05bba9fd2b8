"""The parameter store: every variable of a network, created once, found by name.

The classic TF1 code threaded a Python list ``p`` through every layer and
appended ``[kernel, biases]`` to it. Here ``p`` is a ``ParamStore``
(a ``tf.Module``): the first call of a layer creates its variables under the
layer's name (``conv1_1/w``, ``conv1_1/b``), later calls get the same ones
back, eagerly or inside ``tf.function``. ``p.params`` is still the classic
ordered list ``[kernel, bias, kernel, bias, ...]`` in layer order.
"""
import zlib

import tensorflow as tf

from tfvgg.util import format_shape
from tfvgg.winograd import ALGORITHMS, transform_filters


class ParamStore(tf.Module):
    """Float32 variables keyed by ``"<layer>/<w|b>"``, in creation order (``inference_copy`` makes a 16-bit one).

    Args:
      seed: int; with the same seed every variable gets the same initial
        values (each variable's stateless seed is ``(seed, crc32(name))``,
        so values do not depend on the order layers are built in).
      trainable: default for new variables.
    """

    def __init__(self, seed=0, trainable=True, name=None):
        super().__init__(name=name)
        self.seed = int(seed)
        self.trainable = bool(trainable)
        self._by_name = {}
        object.__setattr__(self, "_frozen_layers", set())
        object.__setattr__(self, "_transformed", {})   # (layer, algorithm) -> variable; see inference_copy
        object.__setattr__(self, "for_inference", False)   # True for an inference_copy
        # Shapes a builder remembers from the first build (e.g. the image size
        # the fc6 variables were created for), for error messages. Set past
        # tf.Module's attribute tracking: they are not part of a checkpoint.
        object.__setattr__(self, "built_shapes", {})

    def get_or_create(self, name, shape, initializer, trainable=None):
        """The variable called ``name``; created with ``initializer`` if new.

        Creation is lifted out of any ``tf.function`` trace (``tf.init_scope``),
        so a traced function captures the variable instead of owning it.
        (``tf.function`` notices the creation and traces its first call twice;
        later calls reuse that trace. Build once eagerly first to trace once.)
        Raises ValueError if it exists with another shape.
        """
        shape = tuple(int(d) for d in shape)
        existing = self._by_name.get(name)
        if existing is not None:
            if tuple(existing.shape) != shape:
                raise ValueError(
                    f"{name}: the store holds this variable with shape {format_shape(existing.shape)}; "
                    f"this call needs {format_shape(shape)}"
                )
            return existing
        seed = (self.seed, zlib.crc32(name.encode()) & 0x7FFFFFFF)
        with tf.init_scope():
            initial_value = initializer(shape, tf.float32, seed)
            variable = tf.Variable(
                initial_value,
                trainable=self.trainable if trainable is None else trainable,
                name=name.replace("/", "_"),
            )
        self._by_name[name] = variable
        return variable

    def get(self, name):
        """The variable called ``name``, or None."""
        return self._by_name.get(name)

    def __getitem__(self, name):
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no variable {name!r} in the store; it has {list(self._by_name)}") from None

    def __contains__(self, name):
        return name in self._by_name

    def __len__(self):
        return len(self._by_name)

    @property
    def names(self):
        """Variable names in creation (= layer) order."""
        return list(self._by_name)

    @property
    def params(self):
        """The classic list ``[kernel, bias, kernel, bias, ...]`` in layer order."""
        return list(self._by_name.values())

    @property
    def layer_names(self):
        """Layers that own variables, in order: ``["conv1_1", ..., "fc8"]``."""
        return list(dict.fromkeys(_layer_of(n) for n in self._by_name))

    def layers_up_to(self, layer):
        """Layer names from the first through ``layer`` (e.g. ``"conv5_3"``: every conv layer of VGG-16)."""
        names = self.layer_names
        if layer not in names:
            raise ValueError(f"no layer {layer!r} in the store; it has {names}")
        return names[:names.index(layer) + 1]

    def freeze(self, layers):
        """Exclude these layers' variables from ``trainable_variables`` (fine-tuning)."""
        self._frozen_layers.update(self._checked_layers(layers))

    def unfreeze(self, layers=None):
        """Make these layers (None: all) trainable again."""
        self._frozen_layers.difference_update(self.layer_names if layers is None else self._checked_layers(layers))

    @property
    def frozen_layers(self):
        return [n for n in self.layer_names if n in self._frozen_layers]

    @property
    def trainable_variables(self):
        """Variables to train, in layer order: created trainable and not in a frozen layer."""
        return tuple(v for n, v in self._by_name.items() if v.trainable and _layer_of(n) not in self._frozen_layers)

    def drop(self, layers):
        """Remove these layers' variables, e.g. ``drop(["fc8"])`` to build a new classifier for N classes."""
        doomed = set(self._checked_layers(layers))
        for name in [n for n in self._by_name if _layer_of(n) in doomed]:
            del self._by_name[name]
        self._frozen_layers.difference_update(doomed)

    def _checked_layers(self, layers):
        layers = [layers] if isinstance(layers, str) else list(layers)
        unknown = [l for l in layers if l not in self.layer_names]
        if unknown:
            raise ValueError(f"no layer {', '.join(map(repr, unknown))} in the store; it has {self.layer_names}")
        return layers

    def inference_copy(self, dtype=tf.float32, winograd=()):
        """A new store with every variable cast once to ``dtype``, not trainable: for inference only.

        The ops read a ``bfloat16``/``float16`` copy directly instead of casting the
        float32 variables on every call (the same rounding, so the same results;
        measured: 5-7% of a VGG-16 bf16 forward pass at batch 8). ``winograd``:
        algorithms ("winograd2", "winograd4", "winograd6") whose transformed filters are kept for
        every 3x3 kernel, or ``{layer: algorithm}`` for some layers each (auto's picks: each algorithm's
        filters take (m+2)^2/9 times the kernel's memory), so ``conv_op`` does not transform them on every call. The
        copy does not follow later changes: make a new one after training or loading.
        """
        dtype, per_layer = tf.as_dtype(dtype), isinstance(winograd, dict)
        copy = ParamStore(seed=self.seed, trainable=False, name=f"{self.name}_{dtype.name}")
        object.__setattr__(copy, "for_inference", True)
        with tf.init_scope():
            for name, variable in self._by_name.items():
                copy._by_name[name] = tf.Variable(tf.cast(variable, dtype), trainable=False,
                                                  name=name.replace("/", "_") + f"_{dtype.name}")
                if name.endswith("/w") and tuple(variable.shape[:2]) == (3, 3):
                    layer = _layer_of(name)
                    algorithms = ([winograd[layer]] if layer in winograd else []) if per_layer else winograd
                    for algorithm in algorithms:
                        u = tf.cast(transform_filters(variable, ALGORITHMS[algorithm]), dtype)
                        copy._transformed[(layer, algorithm)] = tf.Variable(u, trainable=False)
        copy.built_shapes.update(self.built_shapes)
        return copy

    def transformed_filters(self, layer, algorithm):
        """Winograd filters of ``layer`` kept by ``inference_copy``, or None."""
        return self._transformed.get((layer, algorithm))

    def count_params(self):
        """Total number of scalars in all variables."""
        return sum(int(v.shape.num_elements()) for v in self._by_name.values())

    def remember_shape(self, key, shape):
        """Record ``shape`` under ``key`` the first time only."""
        self.built_shapes.setdefault(key, tuple(int(d) for d in shape))


def _layer_of(variable_name):
    return variable_name.rsplit("/", 1)[0]

