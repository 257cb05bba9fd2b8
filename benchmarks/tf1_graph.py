"""The classic TensorFlow 1 graph, rebuilt through ``tf.compat.v1`` as a benchmark peer.

The layers have the classic signatures and bodies (``get_variable`` with Xavier
init, ``p += [kernel, biases]`` so the caller's list is filled), with two
corrections: the last layer has no ReLU, and a compute dtype / data format are
threaded through for the same workload tfvgg runs. The network is built from
tfvgg's configuration table, so every tfvgg model has a TF1 counterpart.
"""
import tensorflow as tf

from tfvgg import configs

v1 = tf.compat.v1


def conv_op(input_op, name, kh, kw, n_out, dh, dw, p, padding="SAME", data_format="NHWC"):
    n_in = int(input_op.shape[-1] if data_format == "NHWC" else input_op.shape[1])
    strides = (1, dh, dw, 1) if data_format == "NHWC" else (1, 1, dh, dw)
    with v1.variable_scope(name):
        kernel = v1.get_variable("w", shape=[kh, kw, n_in, n_out], dtype=tf.float32,
                                 initializer=v1.glorot_uniform_initializer())
        biases = v1.get_variable("b", shape=[n_out], dtype=tf.float32, initializer=v1.zeros_initializer())
        conv = tf.nn.conv2d(input_op, tf.cast(kernel, input_op.dtype), strides, padding, data_format=data_format)
        activation = tf.nn.relu(tf.nn.bias_add(conv, tf.cast(biases, input_op.dtype), data_format=data_format))
    p += [kernel, biases]  # in place: the classic `p = p + [...]` left the caller's list empty
    return activation


def fc_op(input_op, name, n_out, p, relu=True):
    n_in = int(input_op.shape[-1])
    with v1.variable_scope(name):
        kernel = v1.get_variable("w", shape=[n_in, n_out], dtype=tf.float32,
                                 initializer=v1.glorot_uniform_initializer())
        biases = v1.get_variable("b", shape=[n_out], dtype=tf.float32, initializer=v1.constant_initializer(0.1))
        z = tf.nn.bias_add(tf.matmul(input_op, tf.cast(kernel, input_op.dtype)), tf.cast(biases, input_op.dtype))
    p += [kernel, biases]
    return tf.nn.relu(z) if relu else z


def mpool_op(input_op, name, kh, kw, dh, dw, padding="SAME", data_format="NHWC"):
    ksize = (1, kh, kw, 1) if data_format == "NHWC" else (1, 1, kh, kw)
    strides = (1, dh, dw, 1) if data_format == "NHWC" else (1, 1, dh, dw)
    return tf.nn.max_pool2d(input_op, ksize, strides, padding, data_format=data_format, name=name)


def inference(images, keep_prob, model, num_classes, data_format="NHWC", dtype=tf.float32):
    """Returns (predictions, float32 logits, params list [kernel, bias, ...])."""
    p = []
    x = tf.cast(images, dtype)
    for layer in configs.get_network(model).with_classes(num_classes):
        if isinstance(layer, configs.Conv):
            x = conv_op(x, layer.name, layer.kernel, layer.kernel, layer.channels, layer.stride, layer.stride, p,
                        layer.padding, data_format)
        elif isinstance(layer, configs.Pool):
            x = mpool_op(x, layer.name, layer.kernel, layer.kernel, layer.stride, layer.stride, layer.padding,
                         data_format)
        elif isinstance(layer, configs.LRN):
            y = tf.cast(x if data_format == "NHWC" else tf.transpose(x, (0, 2, 3, 1)), tf.float32)
            y = tf.cast(tf.nn.lrn(y, depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75), dtype)
            x = y if data_format == "NHWC" else tf.transpose(y, (0, 3, 1, 2))
        elif isinstance(layer, configs.Flatten):
            x = x if data_format == "NHWC" else tf.transpose(x, (0, 2, 3, 1))
            x = tf.reshape(x, (-1, x.shape[1:].num_elements()))
        elif isinstance(layer, configs.FC):
            x = fc_op(x, layer.name, layer.units, p, relu=layer.relu)
        elif isinstance(layer, configs.Dropout):
            x = tf.nn.dropout(x, rate=1.0 - tf.cast(keep_prob, x.dtype))
    logits = tf.cast(x, tf.float32)
    return tf.argmax(logits, 1), logits, p
