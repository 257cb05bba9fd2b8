"""Optimizers written out: SGD with momentum and weight decay (the VGG paper's), and Adam.

Each keeps its state (learning rate, step count, one or two slots per variable)
in variables, so a ``tf.train.Checkpoint`` of the optimizer resumes training exactly.
Slots are created on the first ``apply``, outside any trace.
"""
import tensorflow as tf


class _Optimizer(tf.Module):
    def __init__(self, learning_rate, weight_decay, name):
        super().__init__(name=name)
        self.learning_rate = tf.Variable(float(learning_rate), trainable=False, dtype=tf.float32, name="learning_rate")
        self.iterations = tf.Variable(0, trainable=False, dtype=tf.int64, name="iterations")
        self.weight_decay = float(weight_decay)
        self._slots = {}

    def _slot(self, kind, variable):
        key = f"{kind}/{variable.name}"
        if key not in self._slots:
            with tf.init_scope():
                self._slots[key] = tf.Variable(tf.zeros_like(variable), trainable=False, name=key.replace(":", "_"))
        return self._slots[key]

    def build(self, variables):
        """Create every slot now (before restoring a checkpoint into them)."""
        for variable in variables:
            for kind in self.slot_kinds:
                self._slot(kind, variable)

    def apply(self, grads, variables):
        """One update of ``variables`` from ``grads`` (L2 weight decay added to each gradient).

        Under a ``tf.distribute`` strategy call it in cross-replica context (e.g. from
        ``merge_call``) with all-reduced gradients: each variable's copy on each device
        is updated by ``strategy.extended.update`` with that device's gradient and slots.
        """
        self.iterations.assign_add(1)
        strategy = tf.distribute.get_strategy()
        for grad, variable in zip(grads, variables):
            slots = [self._slot(kind, variable) for kind in self.slot_kinds]
            if tf.distribute.has_strategy():
                strategy.extended.update(variable, self._decayed_update, args=(grad, *slots), group=False)
            else:
                self._decayed_update(variable, grad, *slots)

    def _decayed_update(self, variable, grad, *slots):
        grad = tf.cast(grad, variable.dtype)
        if self.weight_decay:
            grad += self.weight_decay * variable
        self._update(variable, grad, *slots)


class SGD(_Optimizer):
    """``v = momentum * v - lr * g; w += v`` with ``g`` including ``weight_decay * w``.

    Simonyan & Zisserman: momentum 0.9, weight decay 5e-4, learning rate 1e-2 divided by 10 on plateau.
    """

    def __init__(self, learning_rate=0.01, momentum=0.9, weight_decay=5e-4, name="sgd"):
        super().__init__(learning_rate, weight_decay, name)
        self.momentum = float(momentum)
        self.slot_kinds = ("velocity",) if self.momentum else ()

    def _update(self, variable, grad, velocity=None):
        if velocity is None:
            variable.assign_sub(self.learning_rate * grad)
            return
        velocity.assign(self.momentum * velocity - self.learning_rate * grad)
        variable.assign_add(velocity)


class Adam(_Optimizer):
    """Kingma & Ba (2015): bias-corrected first and second moment estimates."""

    def __init__(self, learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7, weight_decay=0.0, name="adam"):
        super().__init__(learning_rate, weight_decay, name)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self.slot_kinds = ("m", "v")

    def _update(self, variable, grad, m, v):
        t = tf.cast(self.iterations, tf.float32)
        m.assign(self.beta_1 * m + (1.0 - self.beta_1) * grad)
        v.assign(self.beta_2 * v + (1.0 - self.beta_2) * tf.square(grad))
        m_hat = m / (1.0 - self.beta_1 ** t)
        v_hat = v / (1.0 - self.beta_2 ** t)
        variable.assign_sub(self.learning_rate * m_hat / (tf.sqrt(v_hat) + self.epsilon))


OPTIMIZERS = {"sgd": SGD, "adam": Adam}
