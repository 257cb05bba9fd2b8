"""The compiled steps of training and evaluation, and the evaluation loop train and evaluate share.

``make_train_step`` returns a ``tf.function`` that runs one global batch on
every replica of a ``tf.distribute`` strategy (one device by default): each
replica's gradients are summed, one update is applied to every copy of the
variables, and a step whose loss or gradients are not finite changes nothing.
``summed_gradients`` runs a batch as micro-batches, one after another, for a
batch whose activations would not fit at once.
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


def summed_gradients(loss_fn, inputs, variables, micro_batch_size=0):
    """(sums, gradients): ``loss_fn`` over ``inputs`` in micro-batches of ``micro_batch_size`` images, run one
    after another, their results and their gradients w.r.t. ``variables`` summed.

    ``loss_fn(*slices, index) -> [loss, *extras]``: a scalar to differentiate and tensors to sum, computed from
    slices of ``inputs`` (tensors split along axis 0); ``index`` numbers the slice (int32 scalar, 0 for the whole
    batch). ``micro_batch_size`` 0, or no smaller than the batch: the whole batch as one slice. Otherwise only
    one micro-batch's activations are alive at a time (a while loop, one iteration in flight) for one more copy
    of the gradients, their sums. Where the loss sums over images (no batch statistics in these networks) the
    micro-batches give the whole batch's gradient; dropout masks may depend on ``index``. ValueError if a
    variable gets no gradient.
    """
    def run(index, *slices):
        with tf.GradientTape() as tape:
            loss, *extras = loss_fn(*slices, index)
        grads = tape.gradient(loss, variables)
        missing = [v.name for v, g in zip(variables, grads) if g is None]
        if missing or not grads:   # a step that updates nothing, or times nothing, is a bug in the caller
            raise ValueError(f"the loss has no gradient w.r.t. {', '.join(missing) or 'any variable (none given)'}")
        return [loss, *extras], [tf.convert_to_tensor(g) for g in grads]

    size, batch = micro_batch_size, inputs[0].shape[0]
    if not size or (batch is not None and batch <= size):
        return run(tf.constant(0), *inputs)
    n = tf.shape(inputs[0])[0]
    count = n // size
    # [count, size, ...]: each micro-batch keeps a static batch dimension (tuned convolutions apply)
    stacked = [tf.reshape(x[:count * size], [-1, size, *x.shape[1:]]) for x in inputs]

    def add_after(totals, index, slices):
        """``totals`` plus the micro-batch ``slices``, which starts once ``totals`` exist: one at a time."""
        with tf.control_dependencies(tf.nest.flatten(totals)):
            step = run(index, *[tf.identity(x) for x in slices])
        return tf.nest.map_structure(tf.add, totals, step)

    def in_micro_batches():
        first = run(tf.constant(0), *[x[0] for x in stacked])
        _, totals = tf.while_loop(lambda i, _: i < count,
                                  lambda i, totals: (i + 1, add_after(totals, i, [x[i] for x in stacked])),
                                  (tf.constant(1), first), parallel_iterations=1)
        rest = [x[count * size:] for x in inputs]
        if batch is not None:
            return add_after(totals, count, rest) if batch % size else totals
        return tf.cond(n > count * size, lambda: add_after(totals, count, rest), lambda: totals)

    if batch is not None:
        return in_micro_batches()
    return tf.cond(count > 0, in_micro_batches, lambda: run(tf.constant(0), *inputs))


def make_train_step(strategy, p, logits_fn, optimizer, state, keep_prob, seed, loss_scale=None,
                    micro_batch_size=0):
    """``step(images, labels) -> (mean loss, images in the step)``, a ``tf.function`` over the strategy's replicas.

    Dropout is stateless, seeded by (``seed``, global step x replicas + replica), so a resumed run drops the
    same units. With ``loss_scale`` (float16) the loss is scaled before differentiation and overflowing steps
    are skipped. ``micro_batch_size``: each replica's batch runs in micro-batches of that many images, one at a
    time (``summed_gradients``; each micro-batch's dropout seed folds in its number); 0: all at once.
    """
    replicas = strategy.num_replicas_in_sync

    def replica_step(images, labels):
        ctx = tf.distribute.get_replica_context()
        dropout_seed = tf.stack([tf.constant(seed, tf.int64),
                                 state.step * replicas + tf.cast(ctx.replica_id_in_sync_group, tf.int64)])
        count = ctx.all_reduce("sum", tf.cast(tf.shape(labels)[0], tf.float32))

        def loss_fn(images_, labels_, index):
            logits = logits_fn(images_, keep_prob,
                               tf.random.fold_in(dropout_seed, index) if micro_batch_size else dropout_seed)
            loss_sum = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels_, logits))
            share = loss_sum / count   # summed over replicas: the mean over the global batch
            correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, 1), labels_), tf.float32))
            return [loss_scale.scaled(share) if loss_scale else share, loss_sum, correct]

        (_, loss_sum, correct), grads = summed_gradients(loss_fn, [images, labels], p.trainable_variables,
                                                         micro_batch_size)
        grads = ctx.all_reduce("sum", grads)
        grads_finite = tf.constant(True)
        if loss_scale:
            grads, grads_finite = loss_scale.unscale(grads)
        loss = ctx.all_reduce("sum", loss_sum) / count
        correct = ctx.all_reduce("sum", correct)
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
