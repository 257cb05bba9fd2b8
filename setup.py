"""tfvgg: VGG, AlexNet and LeNet from raw TensorFlow 2 ops, with a benchmark.

TensorFlow comes through an extra so you choose the build:
    pip install -e '.[cpu,test]'   # tensorflow-cpu, no CUDA
    pip install -e '.[gpu,test]'   # tensorflow with its CUDA libraries
"""
from setuptools import find_packages, setup

TF_VERSION = "~=2.21.0"  # tested with 2.21; the API used exists since 2.16

setup(
    name="tfvgg",
    version="0.1.0",
    description="VGG, AlexNet and LeNet written op by op with TensorFlow 2 (no Keras layers), plus benchmarks",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["tfvgg", "tfvgg.*"]),
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
        "train": ["scikit-learn>=1.3", "matplotlib>=3.7"],  # the digits dataset; PNG plots
        "test": ["pytest>=8", "scikit-learn>=1.3", "matplotlib>=3.7"],
    },
)
