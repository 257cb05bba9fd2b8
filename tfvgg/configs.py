"""Networks as data: the VGG table of Simonyan & Zisserman (2014), AlexNet and LeNet-5.

Nothing here touches TensorFlow. A network is a tuple of layer specs; the
builder (``tfvgg.network``) and the summary (``tfvgg.summary``) both walk it.
"""
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Conv:
    """kernel x kernel convolution to ``channels`` outputs, then ReLU."""
    name: str
    kernel: int
    channels: int
    stride: int = 1
    padding: str = "SAME"


@dataclass(frozen=True)
class Pool:
    """kernel x kernel max pooling."""
    name: str
    kernel: int = 2
    stride: int = 2
    padding: str = "SAME"


@dataclass(frozen=True)
class LRN:
    """Local response normalization across channels (AlexNet's constants)."""
    name: str


@dataclass(frozen=True)
class Flatten:
    name: str = "flatten"


@dataclass(frozen=True)
class FC:
    """Fully connected; ``units=None`` means the class count; ``relu=False`` gives logits."""
    name: str
    units: object = None
    relu: bool = True


@dataclass(frozen=True)
class Dropout:
    """Dropout with the network's ``keep_prob``."""
    name: str


@dataclass(frozen=True)
class Network:
    name: str
    layers: tuple
    num_classes: int
    input_shape: tuple  # (H, W, C) the network was designed for
    description: str = ""

    def feature_layers(self, num_classes=None):
        """The layers before flatten: the part that works at any image size (``include_top=False``)."""
        layers = self.with_classes(num_classes)
        return layers[:next((i for i, l in enumerate(layers) if isinstance(l, Flatten)), len(layers))]

    @property
    def classifier_name(self):
        """Name of the last fully connected layer (the logits)."""
        return [l.name for l in self.layers if isinstance(l, FC)][-1]

    def with_classes(self, num_classes):
        """The layer list with the class count filled into the last FC."""
        num_classes = self.num_classes if num_classes is None else num_classes
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
            raise ValueError(f"{self.name}: num_classes must be a positive int; got {num_classes!r}")
        return tuple(replace(l, units=num_classes) if isinstance(l, FC) and l.units is None else l
                     for l in self.layers)


# Table 1 of the paper, one column per configuration, one inner tuple per block
# (each block ends in a 2x2/2 max pool). "conv3-64" = 3x3 kernel, 64 channels.
VGG_TABLE = {
    "A": (
        ("conv3-64",),
        ("conv3-128",),
        ("conv3-256", "conv3-256"),
        ("conv3-512", "conv3-512"),
        ("conv3-512", "conv3-512"),
    ),
    "A-LRN": (
        ("conv3-64", "LRN"),
        ("conv3-128",),
        ("conv3-256", "conv3-256"),
        ("conv3-512", "conv3-512"),
        ("conv3-512", "conv3-512"),
    ),
    "B": (
        ("conv3-64", "conv3-64"),
        ("conv3-128", "conv3-128"),
        ("conv3-256", "conv3-256"),
        ("conv3-512", "conv3-512"),
        ("conv3-512", "conv3-512"),
    ),
    "C": (
        ("conv3-64", "conv3-64"),
        ("conv3-128", "conv3-128"),
        ("conv3-256", "conv3-256", "conv1-256"),
        ("conv3-512", "conv3-512", "conv1-512"),
        ("conv3-512", "conv3-512", "conv1-512"),
    ),
    "D": (
        ("conv3-64", "conv3-64"),
        ("conv3-128", "conv3-128"),
        ("conv3-256", "conv3-256", "conv3-256"),
        ("conv3-512", "conv3-512", "conv3-512"),
        ("conv3-512", "conv3-512", "conv3-512"),
    ),
    "E": (
        ("conv3-64", "conv3-64"),
        ("conv3-128", "conv3-128"),
        ("conv3-256", "conv3-256", "conv3-256", "conv3-256"),
        ("conv3-512", "conv3-512", "conv3-512", "conv3-512"),
        ("conv3-512", "conv3-512", "conv3-512", "conv3-512"),
    ),
}


def vgg_layers(table_column, channel_divisor=1, fc_units=4096):
    """Turn one column of ``VGG_TABLE`` into layer specs, named as in the classic code.

    conv{block}_{i} ..., lrn{block}, pool{block}; then flatten, fc6, drop6, fc7, drop7, fc8.
    """
    layers = []
    for block, entries in enumerate(table_column, start=1):
        conv_index = 0
        for entry in entries:
            if entry == "LRN":
                layers.append(LRN(f"lrn{block}"))
                continue
            kernel, channels = entry[len("conv"):].split("-")
            conv_index += 1
            layers.append(Conv(f"conv{block}_{conv_index}", int(kernel), int(channels) // channel_divisor))
        layers.append(Pool(f"pool{block}"))
    layers += [Flatten(), FC("fc6", fc_units), Dropout("drop6"), FC("fc7", fc_units), Dropout("drop7"),
               FC("fc8", None, relu=False)]
    return tuple(layers)


# AlexNet (Krizhevsky et al., 2012) as one tower (no grouped convolutions):
# 224x224 in, conv1 11x11/4 SAME -> 56x56, overlapping 3x3/2 VALID pools -> 27, 13, 6.
ALEXNET = (
    Conv("conv1", 11, 96, stride=4), LRN("lrn1"), Pool("pool1", 3, 2, "VALID"),
    Conv("conv2", 5, 256), LRN("lrn2"), Pool("pool2", 3, 2, "VALID"),
    Conv("conv3", 3, 384),
    Conv("conv4", 3, 384),
    Conv("conv5", 3, 256), Pool("pool5", 3, 2, "VALID"),
    Flatten(), FC("fc6", 4096), Dropout("drop6"), FC("fc7", 4096), Dropout("drop7"),
    FC("fc8", None, relu=False),
)

# LeNet-5 as in the Caffe/Keras MNIST recipe: conv5-20, pool, conv5-50, pool, fc500, fc10.
LENET = (
    Conv("conv1", 5, 20), Pool("pool1"),
    Conv("conv2", 5, 50), Pool("pool2"),
    Flatten(), FC("fc3", 500), FC("fc4", None, relu=False),
)

_VGG_NAMES = {"A": "VGG-11", "A-LRN": "VGG-11 with LRN", "B": "VGG-13", "C": "VGG-16 (1x1 convs)",
              "D": "VGG-16", "E": "VGG-19"}

NETWORKS = {
    **{key: Network(key, vgg_layers(column), 1000, (224, 224, 3), f"{_VGG_NAMES[key]}, configuration {key}")
       for key, column in VGG_TABLE.items()},
    "vgg11_small": Network("vgg11_small", vgg_layers(VGG_TABLE["A"], channel_divisor=4), 10, (224, 224, 1),
                           "VGG-11 with 1/4 of the channels, for Fashion-MNIST resized to 224x224"),
    "alexnet": Network("alexnet", ALEXNET, 1000, (224, 224, 3), "AlexNet, one tower"),
    "lenet": Network("lenet", LENET, 10, (28, 28, 1), "LeNet-5 (conv5-20, conv5-50, fc500)"),
}

ALIASES = {"vgg11": "A", "vgg13": "B", "vgg16": "D", "vgg19": "E"}


def network_names():
    """Every name ``get_network`` accepts."""
    return list(NETWORKS) + list(ALIASES)


def get_network(name):
    """The ``Network`` for a configuration name or alias (case-insensitive)."""
    if isinstance(name, Network):
        return name
    if not isinstance(name, str):
        raise TypeError(f"config must be a name such as 'D'; got {type(name).__name__}")
    by_lower = {n.lower(): n for n in NETWORKS}
    key = ALIASES.get(name.lower(), by_lower.get(name.lower()))
    if key is None:
        raise ValueError(f"unknown config {name!r}; valid: {', '.join(network_names())}")
    return NETWORKS[key]
