"""What gets timed: one batch of each pass, for tfvgg and for the peers a user would pick instead.

Every builder takes a ``Workload`` and returns ``{pass_name: run}``, where
``run()`` executes one batch and returns after the device has finished. Passes:
  forward           inference, keep_prob 1.0, fetch the argmax predictions;
  forward_backward  gradient of l2_loss(logits) w.r.t. every parameter, keep_prob 0.5,
                    fetched as one checksum that reads every gradient (grappler prunes
                    gradients held only by control dependencies: measured, they vanish);
  train             forward_backward plus an SGD update of every parameter.
Inputs are random images held in a variable on the device, created once.
"""
from dataclasses import dataclass, replace

import numpy as np
import tensorflow as tf

import tfvgg
from tfvgg import autotune, configs
from tfvgg.optimizers import SGD
from tfvgg.precision import compute_dtype
from tfvgg.steps import summed_gradients

PASSES = ("forward", "forward_backward", "train")
LEARNING_RATE = 1e-6      # tiny: train steps must not blow random weights up mid-benchmark
FP16_STATIC_LOSS_SCALE = 128.0
KERAS_MODELS = {"D": "VGG16", "E": "VGG19"}


class PeerUnavailable(Exception):
    """This peer cannot run this workload (the message says why)."""


@dataclass(frozen=True)
class Workload:
    model: str
    batch_size: int
    image_size: int
    channels: int
    num_classes: int
    data_format: str = "NHWC"
    precision: str = "fp32"
    xla: bool = False
    device: str = "/CPU:0"
    conv_algorithm: str = "direct"   # tfvgg only: direct, winograd2, winograd4, auto
    micro_batch_size: int = 0        # tfvgg only: gradients in micro-batches of this many images per replica

    @property
    def dtype(self):
        return compute_dtype(self.precision)

    def image_shape(self):
        s, c = self.image_size, self.channels
        return (self.batch_size, s, s, c) if self.data_format == "NHWC" else (self.batch_size, c, s, s)

    def random_images(self):
        """The classic input: N(0, 0.1) images, as a variable so every batch reads device memory."""
        return tf.Variable(tf.random.stateless_normal(self.image_shape(), seed=(0, 1), stddev=0.1),
                           trainable=False, name="images")


def tfvgg_passes(w, passes=PASSES, strategy=None, inputs=None):
    """tfvgg's ``inference_op`` in ``tf.function`` graphs; data-parallel under ``strategy`` if given.

    ``inputs``: a ``tf.data.Dataset`` of image batches that feeds every call (one device only); without it
    every call reads the same synthetic images.

    Under a strategy the global batch ``w.batch_size`` is split over the replicas,
    each replica's images live on its device, gradients are all-reduced, and the
    train pass updates every copy of the variables.
    """
    strategy = strategy or tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    if w.batch_size % replicas:
        raise ValueError(f"--batch_size={w.batch_size} does not split evenly over {replicas} replicas")
    if inputs is not None and replicas > 1:
        raise ValueError("real data feeds one device; run --data_dir without a multi-replica strategy")
    with strategy.scope(), tf.device(None if replicas > 1 else w.device):
        images = _synthetic_images(w, strategy)
        p = tfvgg.ParamStore(seed=0)
        optimizer = SGD(LEARNING_RATE, momentum=0.0, weight_decay=0.0)

        def network(x, keep_prob, store=p, conv_algorithm=w.conv_algorithm):
            """(predictions, softmax, logits) of the replica's images."""
            return tfvgg.inference_op(x, store, keep_prob, w.model, w.num_classes, data_format=w.data_format,
                                      dtype=w.dtype, conv_algorithm=conv_algorithm)

        # Create the variables eagerly, once, before any trace. Direct: the variables are the same for every
        # algorithm, and with auto this one image tuned (compiled, timed) batch-1 training workloads nobody runs.
        network(tf.zeros((1, *w.image_shape()[1:])), 1.0, conv_algorithm="direct")
        # Inference reads weights already in the compute precision (same rounding as a cast per call), and
        # Winograd filters transformed once.
        inference_store = p
        if "forward" in passes and (w.dtype != tf.float32 or w.conv_algorithm != "direct"):   # a copy costs memory
            inference_store = p.inference_copy(w.dtype, winograd=_inference_algorithms(w, replicas))

    def loss_fn(x, _):
        loss = tf.nn.l2_loss(network(x, 0.5)[2])
        return [loss * FP16_STATIC_LOSS_SCALE if w.precision == "fp16" else loss, loss]

    def gradients(x):
        (_, loss), grads = summed_gradients(loss_fn, [x], p.params, w.micro_batch_size)
        check_gradients(grads, p.names)
        grads = tf.distribute.get_replica_context().all_reduce("sum", grads)
        if w.precision == "fp16":
            grads = [g / FP16_STATIC_LOSS_SCALE for g in grads]
        return loss, grads

    def train_step(x):
        loss, grads = gradients(x)
        tf.distribute.get_replica_context().merge_call(lambda _, g: optimizer.apply(g, p.params), args=(grads,))
        return loss

    feed = None if inputs is None else iter(inputs)
    replica_fns = {"forward": lambda x: network(x, 1.0, inference_store)[0],
                   "forward_backward": lambda x: gradient_checksum(gradients(x)[1]),
                   "train": train_step}

    return {name: _replica_graph(replica_fns[name], w, strategy, images, feed) for name in passes}


def _replica_graph(fn, w, strategy, images, feed):
    """A runner of ``fn`` on every replica's images (the next batch of ``feed`` if given), in one ``tf.function``."""
    def run_on_replicas():
        x = images if feed is None else next(feed)
        # One number per replica: fetching only replica 0's result would let the graph prune the others.
        per_replica = strategy.experimental_local_results(strategy.run(fn, args=(x,)))
        return tf.stack([tf.reduce_sum(tf.cast(r, tf.float32)) for r in per_replica])
    one_device = strategy.num_replicas_in_sync == 1
    return _runner(tf.function(run_on_replicas, jit_compile=w.xla or None), w.device if one_device else None)


def _synthetic_images(w, strategy):
    """``w``'s random images: one batch, or under a multi-replica ``strategy`` each replica's share on its device."""
    replicas = strategy.num_replicas_in_sync
    if replicas == 1:
        return w.random_images()
    per_replica_shape = (w.batch_size // replicas, *w.image_shape()[1:])
    return strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.random.stateless_normal(per_replica_shape, seed=(0, ctx.replica_id_in_sync_group), stddev=0.1))


def direct_passes(w, passes=PASSES):
    """tfvgg itself with every convolution direct (``tf.nn.conv2d``): what ``--conv_algorithm=auto`` is against."""
    if w.conv_algorithm == "direct":
        raise PeerUnavailable("tfvgg runs direct convolutions already (--conv_algorithm=direct)")
    return tfvgg_passes(replace(w, conv_algorithm="direct"), passes)


def keras_passes(w, passes=PASSES):
    """``keras.applications`` VGG16/VGG19 (weights=None) with the same inputs, in ``tf.function``."""
    net = configs.get_network(w.model)
    if net.name not in KERAS_MODELS:
        raise PeerUnavailable(f"keras.applications has no counterpart of {net.name}")
    if w.data_format != "NHWC":
        raise PeerUnavailable("keras.applications is timed in NHWC only (its channels_first mode is a global switch)")
    import keras  # a benchmark peer only; tfvgg itself never imports Keras

    policy = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}[w.precision]
    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        with tf.device(w.device):
            images = w.random_images()
            model = getattr(keras.applications, KERAS_MODELS[net.name])(
                weights=None, input_shape=(w.image_size, w.image_size, w.channels), classes=w.num_classes,
                classifier_activation=None)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    variables = model.trainable_variables

    def gradients():
        with tf.GradientTape() as tape:
            loss = tf.nn.l2_loss(tf.cast(model(images, training=True), tf.float32))
            scaled = loss * FP16_STATIC_LOSS_SCALE if w.precision == "fp16" else loss
        grads = tape.gradient(scaled, variables)
        if w.precision == "fp16":
            grads = [g / FP16_STATIC_LOSS_SCALE for g in grads]
        return loss, grads

    def forward():
        return tf.argmax(model(images, training=False), axis=1)

    return _graph_passes(w, passes, forward, gradients, variables)


def tf1_passes(w, passes=PASSES):
    """The classic TensorFlow 1 style: ``get_variable`` layers in a ``tf.Graph`` run by a ``Session``."""
    from benchmarks import tf1_graph

    graph = tf.Graph()
    with graph.as_default(), tf.device(w.device):
        tf.compat.v1.set_random_seed(0)
        images = tf.compat.v1.get_variable("images", initializer=tf.random.normal(w.image_shape(), stddev=0.1),
                                           trainable=False)
        keep_prob = tf.compat.v1.placeholder(tf.float32, shape=(), name="keep_prob")
        predictions, logits, params = tf1_graph.inference(images, keep_prob, w.model, w.num_classes,
                                                          w.data_format, w.dtype)
        loss = tf.nn.l2_loss(logits)
        scale = FP16_STATIC_LOSS_SCALE if w.precision == "fp16" else 1.0
        grads = [g / scale for g in tf.compat.v1.gradients(loss * scale, params)]
        check_gradients(grads, [v.op.name for v in params])
        targets = {
            "forward": (predictions, 1.0),
            "forward_backward": (gradient_checksum(grads), 0.5),
            "train": (tf.group(*[v.assign_sub(LEARNING_RATE * g) for v, g in zip(params, grads)]), 0.5),
        }
        init = tf.compat.v1.global_variables_initializer()
    config = tf.compat.v1.ConfigProto()
    if w.xla:
        config.graph_options.optimizer_options.global_jit_level = tf.compat.v1.OptimizerOptions.ON_1
    session = tf.compat.v1.Session(graph=graph, config=config)
    session.run(init)
    return {name: _session_runner(session, targets[name][0], {keep_prob: targets[name][1]}) for name in passes}


def onnxruntime_passes(w, passes=PASSES):
    """ONNX Runtime (CPU provider, every graph optimization) on tfvgg's ONNX export, same weights and images."""
    ort = _engine_module("onnxruntime", w, passes)
    if w.precision != "fp32":
        raise PeerUnavailable("ONNX Runtime is timed in fp32 only (tfvgg's ONNX export is float32)")
    model, images = engine_inputs(w)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    del model
    return {"forward": lambda: np.argmax(session.run(["logits"], {"images": images})[0], axis=1)}


def openvino_passes(w, passes=PASSES):
    """OpenVINO's CPU plugin, LATENCY hint, on tfvgg's ONNX export; fp32, or bf16 where the CPU has it (AMX,
    AVX512_BF16: OpenVINO then computes in bf16 from the float32 graph, as it does by default there)."""
    ov = _engine_module("openvino", w, passes)
    precision = {"fp32": "f32", "bf16": "bf16"}.get(w.precision)
    if precision is None:
        raise PeerUnavailable(f"OpenVINO is timed in fp32 and bf16, not {w.precision}")
    model, images = engine_inputs(w)
    core = ov.Core()
    compiled = core.compile_model(core.read_model(model.SerializeToString()), "CPU",
                                  {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision})
    del model
    if str(compiled.get_property("INFERENCE_PRECISION_HINT")) != str(ov.Type.bf16 if precision == "bf16"
                                                                      else ov.Type.f32):
        raise PeerUnavailable("OpenVINO computes bf16 only on CPUs with AVX512_BF16 or AMX; this one has neither")
    request = compiled.create_infer_request()
    logits = compiled.output("logits")
    return {"forward": lambda: np.argmax(request.infer({"images": images})[logits], axis=1)}


def engine_inputs(w):
    """(``onnx.ModelProto`` of ``w.model`` with the weights tfvgg's contestant starts from, the same images as a
    float32 ``[N, C, H, W]`` array)."""
    from tfvgg.onnx_export import to_onnx
    with tf.device("/CPU:0"):
        p = tfvgg.ParamStore(seed=0)   # the seed tfvgg_passes uses: the same initial weights
        tfvgg.inference_op(tf.zeros((1, *w.image_shape()[1:])), p, 1.0, w.model, w.num_classes,
                           data_format=w.data_format)
        images = w.random_images().numpy()
    if w.data_format == "NHWC":
        images = np.ascontiguousarray(np.transpose(images, (0, 3, 1, 2)))
    return to_onnx(p, w.model, w.num_classes, w.image_size), images


def _engine_module(name, w, passes):
    """The engine's module, or PeerUnavailable saying why it cannot run ``w`` or how to install it."""
    if "forward" not in passes:
        raise PeerUnavailable(f"{name} is an inference engine: it runs the forward pass only")
    if not w.device.upper().startswith("/CPU"):
        raise PeerUnavailable(f"{name} is compared on the CPU only")
    from tfvgg.onnx_export import require
    try:
        return require(name)
    except ImportError as e:
        raise PeerUnavailable(str(e)) from None


def _inference_algorithms(w, replicas):
    """Winograd filters the inference copy transforms once: for the algorithm asked for, or ``{layer: algorithm}``
    of auto's picks."""
    if w.conv_algorithm != "auto":
        return [] if w.conv_algorithm == "direct" else [w.conv_algorithm]
    choices = autotune.network_choices(w.model, w.batch_size // replicas, w.dtype, w.data_format, "inference",
                                       w.image_size)
    return {layer: c.algorithm for layer, c in choices.items() if c.algorithm != "direct"}


def gradient_checksum(grads):
    """Sum of every gradient element: a data dependency on all of them, for under 1% of the step's work."""
    return tf.add_n([tf.reduce_sum(tf.cast(g, tf.float32)) for g in grads])


def check_gradients(grads, names):
    """Every parameter must get a gradient: an empty or partial list would time nothing."""
    missing = [n for n, g in zip(names, grads) if g is None]
    if not grads or missing or len(grads) != len(names):
        raise RuntimeError(f"gradients missing for {missing or 'every parameter'}")


def _graph_passes(w, passes, forward, gradients, variables):
    """``tf.function`` runners of the passes, given ``forward()`` and ``gradients() -> (loss, grads)``."""
    def forward_backward():
        return gradient_checksum(gradients()[1])

    def train():
        loss, grads = gradients()
        for variable, grad in zip(variables, grads):
            variable.assign_sub(LEARNING_RATE * grad)
        return loss

    fns = {"forward": forward, "forward_backward": forward_backward, "train": train}
    return {name: _runner(tf.function(fns[name], jit_compile=w.xla or None), w.device) for name in passes}


def _runner(fn, device):
    def run():
        with tf.device(device):   # None: the strategy places the work
            result = fn()
        return np.asarray(result)  # blocks until the device is done; the result is tiny
    return run


def _session_runner(session, target, feed):
    return lambda: session.run(target, feed_dict=feed)
