"""Benchmarks for tfvgg networks: ``python -m benchmarks.vgg16``, ``python -m benchmarks.vgg19``.

TensorFlow 2.21 runs its oneDNN kernels by default only on CPUs with AVX-512 VNNI/BF16 or AMX. The benchmarks
run them on every CPU, so each machine times the same kind of kernels (on an AVX2-only EPYC, where TensorFlow
leaves them off, VGG-16's forward pass with auto took 1.57 s per batch of 8 instead of 1.90; docs/measurements.md).
``TF_ENABLE_ONEDNN_OPTS=0`` in the environment keeps TensorFlow's default; the report's header says which ran.
TensorFlow reads the variable when it loads, so this is set only if nothing imported it yet.
"""
import os
import sys

if "tensorflow" not in sys.modules:
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
