"""A network of your own from tfvgg's primitives: three conv blocks for 32x32 images, trained by hand.

    python examples/custom_net.py            # a few epochs on scikit-learn's digits, resized to 32x32
    python examples/custom_net.py --quick    # one short epoch (what the tests run)

Everything a framework would hide is here: the variables (in a ParamStore), the
forward pass (conv_op, mpool_op, fc_op), the loss, the gradient tape and the update.
"""
import argparse
import math

import tensorflow as tf

import tfvgg
from tfvgg.data import load_digits, to_tf_dataset
from tfvgg.optimizers import Adam


def three_block_net(images, p, keep_prob, num_classes=10):
    """[N, 32, 32, C] -> logits [N, num_classes]. Not a VGG: one conv per block, channels 32-64-128."""
    x = images
    for block, channels in enumerate((32, 64, 128), start=1):
        x = tfvgg.conv_op(x, f"conv{block}", kh=3, kw=3, n_out=channels, dh=1, dw=1, p=p)   # 3x3, same size
        x = tfvgg.mpool_op(x, f"pool{block}", kh=2, kw=2, dh=2, dw=2)                     # halves H and W
    x = tfvgg.flatten_op(x)                                      # 32 -> 16 -> 8 -> 4: 4*4*128 = 2,048 values
    x = tfvgg.fc_op(x, "fc4", n_out=256, p=p)
    x = tfvgg.dropout_op(x, "drop4", keep_prob)
    return tfvgg.fc_op(x, "fc5", n_out=num_classes, p=p, relu=False)   # logits: no ReLU on the last layer


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="one epoch on 256 images")
    args = parser.parse_args()
    epochs, subset = (1, 256) if args.quick else (args.epochs, None)

    data = load_digits(seed=0)
    train_x, train_y = data.train_images[:subset], data.train_labels[:subset]
    p = tfvgg.ParamStore(seed=0)
    three_block_net(tf.zeros([1, 32, 32, 1]), p, 1.0)          # first call creates the variables
    print(f"{len(p.params)} variables, {p.count_params():,} parameters:", ", ".join(p.names))
    optimizer = Adam(learning_rate=1e-3)

    @tf.function
    def train_step(images, labels):
        with tf.GradientTape() as tape:
            logits = three_block_net(images, p, keep_prob=0.5)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        optimizer.apply(tape.gradient(loss, p.trainable_variables), p.trainable_variables)
        return loss

    for epoch in range(1, epochs + 1):
        losses = [float(train_step(x, y)) for x, y in to_tf_dataset(train_x, train_y, 32, 32, 1, shuffle_seed=epoch)]
        correct = 0
        for x, y in to_tf_dataset(data.test_images, data.test_labels, 128, 32, 1):
            predictions = tf.argmax(three_block_net(x, p, keep_prob=1.0), axis=1)
            correct += int(tf.reduce_sum(tf.cast(predictions == y, tf.int32)))
        accuracy = correct / len(data.test_labels)
        print(f"epoch {epoch}: mean train loss {sum(losses) / len(losses):.4f}, test accuracy {accuracy:.4f}")
        assert math.isfinite(losses[-1])


if __name__ == "__main__":
    main()
