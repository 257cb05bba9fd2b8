"""AlexNet (5 conv with LRN and overlapping 3x3/2 pooling, 3 fc with dropout) on a folder of images.

    python examples/alexnet_flowers.py --data_dir=~/17flowers   # one sub-folder per class (the 17-flower set)
    python examples/alexnet_flowers.py                          # no folder: digits resized to 64x64 RGB
    python examples/alexnet_flowers.py --quick                  # one short epoch (what the tests run)
"""
import argparse
import os

import tfvgg
from tfvgg.trainer import TrainConfig, train


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--model_dir", default="runs/alexnet")
    parser.add_argument("--quick", action="store_true", help="one epoch on 200 images")
    args = parser.parse_args()
    data_dir = os.path.expanduser(args.data_dir) if args.data_dir else None
    if data_dir and os.path.isdir(data_dir):
        cfg = TrainConfig(model="alexnet", dataset="folder", data_dir=data_dir, image_size=224, batch_size=32,
                          epochs=30, optimizer="adam", learning_rate=1e-4, model_dir=args.model_dir)
    else:
        print("No image folder given: AlexNet on scikit-learn's digits, grey to RGB, resized to 64x64.")
        cfg = TrainConfig(model="alexnet", dataset="digits", image_size=64, batch_size=32, epochs=10,
                          optimizer="adam", learning_rate=1e-4, model_dir=args.model_dir)
    tfvgg.summary("alexnet", (cfg.image_size, cfg.image_size, 3), num_classes=10 if cfg.dataset == "digits" else None)
    if args.quick:
        cfg.epochs, cfg.train_subset = 1, 200
    train(cfg)


if __name__ == "__main__":
    main()
