"""The small VGG-11 recipe: every channel count / 4, Fashion-MNIST resized 28 -> 224, SGD lr 0.05, 10 epochs.

    python examples/vgg11_fashion_mnist.py --data_dir=~/fashion   # the four Fashion-MNIST IDX files (GPU advised)
    python examples/vgg11_fashion_mnist.py                        # no data here: digits at 32x32 with Adam
    python examples/vgg11_fashion_mnist.py --quick                # one short epoch (what the tests run)
"""
import argparse
import os

from tfvgg.trainer import TrainConfig, train

from lenet_mnist import has_mnist  # same four IDX file names


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--model_dir", default="runs/vgg11_fashion")
    parser.add_argument("--quick", action="store_true", help="one epoch on 200 images")
    args = parser.parse_args()
    data_dir = os.path.expanduser(args.data_dir) if args.data_dir else None
    if has_mnist(data_dir):
        # The published recipe: plain SGD, lr 0.05, batch 128, 10 epochs, dropout 0.5, 224x224.
        cfg = TrainConfig(model="vgg11_small", dataset="fashion_mnist", data_dir=data_dir, image_size=224,
                          batch_size=128, epochs=10, optimizer="sgd", learning_rate=0.05, momentum=0.0,
                          weight_decay=0.0, plateau_patience=0, model_dir=args.model_dir)
    else:
        print("No Fashion-MNIST IDX files given: the same network on scikit-learn's digits at 32x32 "
              "(Adam: plain SGD needs the full data set's 4,690 steps to get going).")
        cfg = TrainConfig(model="vgg11_small", dataset="digits", image_size=32, batch_size=32, epochs=15,
                          optimizer="adam", learning_rate=3e-4, model_dir=args.model_dir)
    if args.quick:
        cfg.epochs, cfg.train_subset = 1, 200
    train(cfg)


if __name__ == "__main__":
    main()
