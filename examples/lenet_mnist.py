"""LeNet-5 on MNIST (conv5-20, pool, conv5-50, pool, fc500, fc10), the classic Caffe/Keras recipe.

    python examples/lenet_mnist.py --data_dir=~/mnist   # the four IDX files (train-images-idx3-ubyte.gz, ...)
    python examples/lenet_mnist.py                      # no MNIST here: the digits that ship with scikit-learn
    python examples/lenet_mnist.py --quick              # one short epoch (what the tests run)

Uses tfvgg's trainer, so the run is resumable and leaves metrics.csv and plots in --model_dir.
"""
import argparse
import os

from tfvgg.data import MNIST_FILES
from tfvgg.trainer import TrainConfig, train


def has_mnist(data_dir):
    return bool(data_dir) and all(os.path.exists(os.path.join(data_dir, stem + ".gz")) or
                                  os.path.exists(os.path.join(data_dir, stem)) for stem in MNIST_FILES.values())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--model_dir", default="runs/lenet")
    parser.add_argument("--quick", action="store_true", help="one epoch on 300 images")
    args = parser.parse_args()
    data_dir = os.path.expanduser(args.data_dir) if args.data_dir else None
    dataset = "mnist" if has_mnist(data_dir) else "digits"
    if dataset == "digits":
        print("No MNIST IDX files given: using the digits that ship with scikit-learn, resized to 28x28.")
    cfg = TrainConfig(model="lenet", dataset=dataset, data_dir=data_dir, image_size=28, batch_size=64,
                      epochs=1 if args.quick else 10, optimizer="sgd", learning_rate=0.01, momentum=0.9,
                      keep_prob=1.0, train_subset=300 if args.quick else 0, model_dir=args.model_dir)
    train(cfg)


if __name__ == "__main__":
    main()
