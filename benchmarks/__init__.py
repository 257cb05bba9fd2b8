"""Benchmarks for tfvgg networks: ``python -m benchmarks.vgg16``, ``python -m benchmarks.vgg19``."""
