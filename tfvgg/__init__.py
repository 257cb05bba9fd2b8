"""tfvgg: VGG, AlexNet and LeNet written op by op with TensorFlow 2 (no Keras layers).

    import tfvgg
    p = tfvgg.ParamStore(seed=0)
    predictions, softmax, logits = tfvgg.inference_op(images, p, keep_prob=1.0, config="D")
    tfvgg.summary("D", (224, 224, 3))
"""
from tfvgg.configs import (ALIASES, NETWORKS, VGG_TABLE, Conv, Dropout, FC, Flatten, LRN, Network, Pool,
                           get_network, network_names)
from tfvgg.initializers import Constant, GlorotUniform
from tfvgg.network import inference_op, vgg11, vgg13, vgg16, vgg19
from tfvgg.ops import conv_op, dropout_op, fc_op, flatten_op, lrn_op, mpool_op
from tfvgg.params import ParamStore
from tfvgg.summary import Summary, summary
from tfvgg.checkpoint import Checkpointer
from tfvgg.images import IMAGENET_RGB_MEAN, class_names, decode_predictions, load_image, preprocess
from tfvgg.weights import load_weights, read_weights, save_npz

__version__ = "0.1.0"   # the one place the version is written; setup.py reads it here
