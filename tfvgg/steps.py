"""The compiled steps of training and evaluation, and the evaluation loop train and evaluate share.

``make_train_step`` returns a ``tf.function`` that runs one global batch on
every replica of a ``tf.distribute`` strategy (one device by default): each
replica's gradients are summed, one update is applied to every copy of the
variables, and a step whose loss or gradients are not finite changes nothing.
"""
import numpy as np
import tensorflow as tf

from tfvgg.network import inference_op


class NonFiniteLoss(RuntimeError):
    """The loss or the weights became NaN or infinite; the last checkpoint is the last good state."""

    def __init__(self, what, epoch, last_checkpoint):
        super().__init__(f"{what} (epoch {epoch}); stopped without saving. The last good checkpoint is "
                         f"{last_checkpoint}; lower --learning_rate and train in a new --model_dir")


class TrainState(tf.Module):
    """Counters a resume must restore: global step, running sums of the current epoch, plateau bookkeeping."""

    def __init__(self):
        super().__init__(name="train_state")
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.loss_sum = tf.Variable(0.0, dtype=tf.float64, trainable=False)
        self.correct = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.seen = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.best_validation_loss = tf.Variable(np.inf, dtype=tf.float64, trainable=False)
        self.bad_epochs = tf.Variable(0, dtype=tf.int64, trainable=False)

    def record(self, loss, correct, count):
        self.step.assign_add(1)
        self.loss_sum.assign_add(tf.cast(loss, tf.float64) * tf.cast(count, tf.float64))
        self.correct.assign_add(correct)
        self.seen.assign_add(count)

    def epoch_means(self):
        """(mean loss, accuracy) over the steps of the current epoch."""
        seen = max(int(self.seen.numpy()), 1)
        return float(self.loss_sum.numpy()) / seen, int(self.correct.numpy()) / seen

    def end_epoch(self, validation_loss, optimizer, patience, factor):
        """Reset the sums; multiply the learning rate by ``factor`` after ``patience`` epochs without a better
        validation loss. Returns whether this epoch's validation loss is the best so far."""
        self.loss_sum.assign(0.0)
        self.correct.assign(0)
        self.seen.assign(0)
        if validation_loss < float(self.best_validation_loss.numpy()):
            self.best_validation_loss.assign(validation_loss)
            self.bad_epochs.assign(0)
            return True
        self.bad_epochs.assign_add(1)
        if patience and int(self.bad_epochs.numpy()) >= patience:
            optimizer.learning_rate.assign(optimizer.learning_rate * factor)
            self.bad_epochs.assign(0)
        return False


def network_fn(p, net_name, num_classes, dtype, conv_algorithm):
    """``logits(images, keep_prob, dropout_seed=None)`` ``[N, num_classes]`` float32 of the network on ``p``."""
    def logits(images, keep_prob, dropout_seed=None):
        return inference_op(images, p, keep_prob, net_name, num_classes, dtype=dtype, dropout_seed=dropout_seed,
                            conv_algorithm=conv_algorithm)[2]
    return logits


def make_train_step(strategy, p, logits_fn, optimizer, state, keep_prob, seed, loss_scale=None):
    """``step(images, labels) -> (mean loss, images in the step)``, a ``tf.function`` over the strategy's replicas.

    Dropout is stateless, seeded by (``seed``, global step x replicas + replica), so a resumed run drops the
    same units. With ``loss_scale`` (float16) the loss is scaled before differentiation and overflowing steps
    are skipped.
    """
    replicas = strategy.num_replicas_in_sync

    def replica_step(images, labels):
        ctx = tf.distribute.get_replica_context()
        dropout_seed = tf.stack([tf.constant(seed, tf.int64),
                                 state.step * replicas + tf.cast(ctx.replica_id_in_sync_group, tf.int64)])
        count = ctx.all_reduce("sum", tf.cast(tf.shape(labels)[0], tf.float32))
        with tf.GradientTape() as tape:
            logits = logits_fn(images, keep_prob, dropout_seed)
            loss_sum = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
            share = loss_sum / count   # summed over replicas: the mean over the global batch
            scaled = loss_scale.scaled(share) if loss_scale else share
        grads = ctx.all_reduce("sum", tape.gradient(scaled, p.trainable_variables))
        grads_finite = tf.constant(True)
        if loss_scale:
            grads, grads_finite = loss_scale.unscale(grads)
        loss = ctx.all_reduce("sum", loss_sum) / count
        correct = ctx.all_reduce("sum", tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, 1), labels), tf.float32)))
        ctx.merge_call(apply_update, args=(grads, loss, correct, count, grads_finite))
        return loss, count

    def apply_update(strategy_, grads, loss, correct, count, grads_finite):
        """Cross-replica: update the variables once (on every device), unless the step went non-finite."""
        first = lambda value: strategy_.experimental_local_results(value)[0]  # noqa: E731 - same on all replicas
        if loss_scale:
            loss_scale.update(first(grads_finite))

        def apply():
            optimizer.apply(grads, p.trainable_variables)
            state.record(first(loss), tf.cast(first(correct), tf.int64), tf.cast(first(count), tf.int64))
            return tf.constant(True)

        ok = tf.math.is_finite(first(loss)) & first(grads_finite)
        return tf.cond(ok, apply, lambda: tf.constant(False))

    @tf.function(reduce_retracing=True)
    def train_step(images, labels):
        loss, count = strategy.run(replica_step, args=(images, labels))
        return strategy.experimental_local_results(loss)[0], strategy.experimental_local_results(count)[0]

    return train_step


def make_eval_step(logits_fn, image_size, channels):
    """``step(images, labels) -> (summed loss, predictions [N])`` in a ``tf.function`` (no dropout)."""
    @tf.function(input_signature=[tf.TensorSpec([None, image_size, image_size, channels], tf.float32),
                                  tf.TensorSpec([None], tf.int64)])
    def eval_step(images, labels):
        logits = logits_fn(images, 1.0)
        loss_sum = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        return loss_sum, tf.argmax(logits, 1)
    return eval_step


def evaluate(eval_step, dataset):
    """(mean loss, accuracy, predictions ``[N]``, labels ``[N]``) of ``eval_step`` over ``dataset``'s
    (images, labels) batches (``tfvgg.data.pipeline.batches``)."""
    loss_sum, predictions, labels = 0.0, [], []
    for batch_images, batch_labels in dataset:
        batch_loss, batch_predictions = eval_step(batch_images, batch_labels)
        loss_sum += float(batch_loss)
        predictions.append(batch_predictions.numpy())
        labels.append(batch_labels.numpy())
    if not predictions:
        raise ValueError("nothing to evaluate: the split has no images")
    predictions, labels = np.concatenate(predictions), np.concatenate(labels)
    return loss_sum / len(predictions), float(np.mean(predictions == labels)), predictions, labels
