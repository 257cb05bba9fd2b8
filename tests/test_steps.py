"""Micro-batches: the summed gradients of a batch run in slices equal the whole batch's."""
import numpy as np
import pytest
import tensorflow as tf

import tfvgg
from tfvgg.steps import network_fn, summed_gradients

IMAGES = tf.random.stateless_normal([10, 28, 28, 1], seed=(1, 2))
LABELS = tf.constant(np.arange(10) % 7, tf.int64)


@pytest.fixture(scope="module")
def lenet():
    p = tfvgg.ParamStore(seed=0)
    logits = network_fn(p, "lenet", 10, tf.float32, "direct")
    logits(IMAGES[:1], 1.0)   # creates the variables

    def loss_fn(images, labels, index):
        loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits(images, 1.0)))
        return [loss, tf.cast(tf.shape(labels)[0], tf.float32), tf.cast(index, tf.float32)]
    return p, loss_fn


def assert_same_gradients(got, want):
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("micro_batch_size, slices", [(3, 4), (5, 2), (1, 10), (10, 1), (64, 1)])
def test_micro_batches_sum_to_the_whole_batch(lenet, micro_batch_size, slices):
    p, loss_fn = lenet
    (loss, count, _), whole = summed_gradients(loss_fn, [IMAGES, LABELS], p.trainable_variables)
    step = tf.function(lambda x, y: summed_gradients(loss_fn, [x, y], p.trainable_variables, micro_batch_size))
    (got_loss, got_count, index_sum), got = step(IMAGES, LABELS)
    assert float(got_count) == 10 and float(index_sum) == sum(range(slices))   # every slice, numbered, once
    assert float(got_loss) == pytest.approx(float(loss), rel=1e-5)
    assert_same_gradients(got, whole)


@pytest.mark.parametrize("batch", [10, 2, 9, 3])
def test_micro_batches_of_an_unknown_batch_size(lenet, batch):
    p, loss_fn = lenet
    step = tf.function(lambda x, y: summed_gradients(loss_fn, [x, y], p.trainable_variables, 3),
                       input_signature=[tf.TensorSpec([None, 28, 28, 1]), tf.TensorSpec([None], tf.int64)])
    (_, count, _), got = step(IMAGES[:batch], LABELS[:batch])
    _, whole = summed_gradients(loss_fn, [IMAGES[:batch], LABELS[:batch]], p.trainable_variables)
    assert float(count) == batch
    assert_same_gradients(got, whole)


def test_a_variable_without_a_gradient_is_an_error(lenet):
    p, loss_fn = lenet
    unused = tf.Variable(1.0, name="unused")
    with pytest.raises(ValueError, match="no gradient w.r.t. unused"):
        summed_gradients(loss_fn, [IMAGES, LABELS], [*p.trainable_variables, unused], 4)
