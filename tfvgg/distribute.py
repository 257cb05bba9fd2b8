"""Choosing a ``tf.distribute`` strategy for the trainer and the benchmark.

  default       one device (TensorFlow's default strategy: no-op wrappers)
  mirrored      ``MirroredStrategy`` over all local GPUs, or over ``cpu_replicas``
                logical CPU devices where there is no GPU (for testing data parallelism)
  multi_worker  ``MultiWorkerMirroredStrategy``, configured by the ``TF_CONFIG``
                environment variable of each worker process

Strategies must be made before TensorFlow runs its first op.
"""
import json
import os

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker")


def split_cpu(replicas):
    """Turn the CPU into ``replicas`` logical devices (/cpu:0 .. /cpu:N-1); only before TensorFlow starts."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    wanted = [tf.config.LogicalDeviceConfiguration() for _ in range(replicas)]
    try:
        tf.config.set_logical_device_configuration(cpu, wanted)
    except RuntimeError:
        if len(tf.config.list_logical_devices("CPU")) != replicas:
            raise ValueError(f"cannot split the CPU into {replicas} devices: TensorFlow has already started; "
                             "make the strategy first") from None


def make_strategy(name, cpu_replicas=0):
    """The strategy called ``name`` (see the module docstring)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if tf.config.list_physical_devices("GPU"):
            return tf.distribute.MirroredStrategy()
        replicas = max(1, cpu_replicas)
        if replicas > 1:
            split_cpu(replicas)
        return tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(replicas)])
    if name == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            raise ValueError("--strategy=multi_worker needs TF_CONFIG in each worker's environment "
                             "(see BUILD.md, 'Several machines')")
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.RING)
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}; got {name!r}")


def task():
    """(task type, index) from TF_CONFIG; ("worker", 0) without it."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    t = config.get("task", {})
    return t.get("type", "worker"), int(t.get("index", 0))


def is_chief():
    """The process that writes checkpoints, metrics and plots: the chief, else worker 0."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task_type, index = task()
    if "chief" in config.get("cluster", {}):
        return task_type == "chief"
    return task_type == "worker" and index == 0
