"""Precision names and loss scaling for float16 training.

Mixed precision in tfvgg: variables stay float32 in the ``ParamStore``; the
network computes in the compute dtype (``inference_op(..., dtype=...)``).
float16 gradients underflow for small losses, so the loss is multiplied by a
scale before differentiation and the gradients divided by it afterwards.
"""
import tensorflow as tf

PRECISIONS = {"fp32": tf.float32, "bf16": tf.bfloat16, "fp16": tf.float16}


def compute_dtype(precision):
    """``"fp32"``/``"bf16"``/``"fp16"`` -> the TensorFlow dtype the network computes in."""
    try:
        return PRECISIONS[precision]
    except KeyError:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}") from None


class DynamicLossScale(tf.Module):
    """Loss scale that halves on non-finite gradients and doubles after ``growth_steps`` finite ones.

    Use: ``grads = tape.gradient(ls.scaled(loss), vars)``;
    ``grads, finite = ls.unscale(grads)``; apply only if ``finite``; ``ls.update(finite)``.
    """

    def __init__(self, initial_scale=2.0 ** 15, growth_steps=2000, name=None):
        super().__init__(name=name)
        self.scale = tf.Variable(float(initial_scale), trainable=False, dtype=tf.float32, name="loss_scale")
        self.finite_steps = tf.Variable(0, trainable=False, dtype=tf.int64, name="finite_steps")
        self.growth_steps = int(growth_steps)

    def scaled(self, loss):
        """``loss * scale`` in float32."""
        return tf.cast(loss, tf.float32) * self.scale

    def unscale(self, grads):
        """(grads / scale, whether every gradient is finite)."""
        inverse = 1.0 / self.scale
        grads = [g * tf.cast(inverse, g.dtype) for g in grads]
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])
        return grads, finite

    def update(self, finite):
        """Halve the scale (not below 1) on overflow; double it after ``growth_steps`` finite steps."""
        grown = tf.equal(self.finite_steps + 1, self.growth_steps)
        new_scale = tf.where(finite, tf.where(grown, self.scale * 2.0, self.scale),
                             tf.maximum(self.scale / 2.0, 1.0))
        self.finite_steps.assign(tf.where(finite & ~grown, self.finite_steps + 1, tf.zeros_like(self.finite_steps)))
        self.scale.assign(new_scale)
