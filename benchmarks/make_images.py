"""A folder of generated JPEG photographs-in-shape for measuring the input pipeline (nothing is downloaded):

    python -m benchmarks.make_images --out=/tmp/images_2k --count=2000
    python -m tfvgg.data.to_tfrecords --input_dir=/tmp/images_2k --output_dir=/tmp/records_2k

``--count`` images over ``--classes`` class folders, ImageNet-like sizes (shorter side 256..480, aspect 3:4 to
4:3): smooth colour fields plus noise, so each JPEG is tens of KB, like a photograph, not a flat colour.
"""
import os

from absl import flags
import numpy as np
import tensorflow as tf

from tfvgg import cli


def define_flags():
    cli.FlagSpec("path", "Folder to create (must not exist).").define("out", None, required=True)
    cli.FlagSpec("integer", "Images in all.", lower=1).define("count", 2000)
    cli.FlagSpec("integer", "Class folders.", lower=2).define("classes", 10)
    cli.FlagSpec("integer", "Seed.", lower=0).define("seed", 0)


def image(rng):
    """uint8 ``[H, W, 3]``: a bilinear blend of random corner colours, a sine texture and noise."""
    short = int(rng.integers(256, 481))
    long = int(short * rng.uniform(1.0, 4 / 3))
    h, w = (short, long) if rng.random() < 0.7 else (long, short)
    corners = rng.uniform(0, 255, (2, 2, 3))
    y, x = np.linspace(0, 1, h)[:, None, None], np.linspace(0, 1, w)[None, :, None]
    field = (corners[0, 0] * (1 - y) * (1 - x) + corners[0, 1] * (1 - y) * x + corners[1, 0] * y * (1 - x)
             + corners[1, 1] * y * x)
    texture = 20 * np.sin(x * rng.uniform(10, 60) + y * rng.uniform(10, 60))
    noise = rng.normal(0, 12, (h, w, 3))
    return np.clip(field + texture + noise, 0, 255).astype(np.uint8)


def main(argv):
    cli.no_positional_arguments(argv)
    f = flags.FLAGS
    if os.path.exists(f.out):
        cli.fail(f"{f.out} already exists; choose a new --out", argv)
    rng = np.random.default_rng(f.seed)
    for c in range(f.classes):
        os.makedirs(os.path.join(f.out, f"class_{c:03d}"))
    for i in range(f.count):
        path = os.path.join(f.out, f"class_{i % f.classes:03d}", f"{i:07d}.jpg")
        tf.io.write_file(path, tf.io.encode_jpeg(image(rng), quality=90))
    print(f"Wrote {f.count} JPEGs in {f.classes} class folders under {f.out}")


def run():
    cli.run(main, define_flags)


if __name__ == "__main__":
    run()
