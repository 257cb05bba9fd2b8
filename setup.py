"""tfvgg: VGG, AlexNet and LeNet from raw TensorFlow 2 ops, with a benchmark.

TensorFlow comes through an extra so you choose the build:
    pip install '.[cpu]'             # tensorflow-cpu, no CUDA
    pip install '.[gpu]'             # tensorflow with its CUDA libraries
    pip install '.[cpu,train,test]'  # + the digits data set, plots, TensorBoard, pytest
    pip install '.[cpu,peers]'       # + onnx, ONNX Runtime and OpenVINO: ONNX export, the engines as benchmark peers
"""
import os
import re

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))
TF_VERSION = "~=2.21.0"  # tested with 2.21; the API used exists since 2.16
TRAIN = [
    "scikit-learn>=1.3",   # the digits data set, the trainer's default
    "matplotlib>=3.7",     # loss/accuracy PNGs
    "tensorboard>=2.16",   # `tensorboard --logdir runs` (TensorFlow 2.21 no longer depends on it)
]
PEERS = [
    "onnx>=1.16",          # tfvgg.export --format=onnx builds the graph with onnx's own helpers
    "onnxruntime>=1.18",   # benchmarks.vgg16 --compare=onnxruntime
    "openvino>=2024.0",    # benchmarks.vgg16 --compare=openvino
]


def read(name):
    with open(os.path.join(HERE, name), encoding="utf-8") as f:
        return f.read()


def version():
    """``__version__`` from tfvgg/__init__.py, the one place it is written."""
    return re.search(r'^__version__ = "([^"]+)"', read("tfvgg/__init__.py"), re.M).group(1)


setup(
    name="tfvgg",
    version=version(),
    description="VGG, AlexNet and LeNet written op by op with TensorFlow 2 (no Keras layers), plus benchmarks",
    long_description=read("README.md"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    packages=find_packages(include=["tfvgg", "tfvgg.*", "benchmarks", "benchmarks.*"]),
    package_data={"tfvgg": ["data/*.txt"]},
    python_requires=">=3.10",
    install_requires=[
        "numpy>=1.26,<3",
        "absl-py>=2.0",
        "h5py>=3.8",  # Keras .h5 weight files (TensorFlow's Keras needs it too)
    ],
    extras_require={
        "cpu": [f"tensorflow-cpu{TF_VERSION}"],
        "gpu": [f"tensorflow[and-cuda]{TF_VERSION}"],
        "train": TRAIN,
        "peers": PEERS,
        "test": ["pytest>=8", "pytest-xdist>=3", *TRAIN],   # xdist: the fast lane on every core
    },
    entry_points={"console_scripts": [
        "tfvgg-train = tfvgg.train:run",
        "tfvgg-evaluate = tfvgg.evaluate:run",
        "tfvgg-classify = tfvgg.classify:run",
        "tfvgg-export = tfvgg.export:run",
        "tfvgg-to-tfrecords = tfvgg.data.to_tfrecords:run",
        "tfvgg-bench = benchmarks.vgg16:run",
        "tfvgg-bench-vgg19 = benchmarks.vgg19:run",
        "tfvgg-conv-layers = benchmarks.conv_layers:run",
        "tfvgg-report = benchmarks.report:run",
    ]},
)
