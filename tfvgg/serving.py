"""What a training run directory gives serving: ``serving.json`` and the best weights, read back as a ``RunModel``.

``serving.json`` holds the network, its class count and names and the
preprocessing the run applied (``pipeline.Preprocessing``); ``best/`` holds
the weights of the epoch with the lowest validation loss. ``classify``,
``export`` and ``evaluate`` take ``--model_dir=RUN`` through ``load_run``.
"""
import dataclasses
import os

from tfvgg import configs
from tfvgg.checkpoint import Checkpointer
from tfvgg.data.pipeline import Preprocessing
from tfvgg.images import read_image
from tfvgg.network import inference_op
from tfvgg.params import ParamStore
from tfvgg.train_config import read_run_json
from tfvgg.util import write_json

SERVING_FILE = "serving.json"
BEST_DIR = "best"


def write_serving_info(model_dir, model, class_names, prep):
    """``model_dir/serving.json`` (atomic): the network, its classes and preprocessing."""
    write_json(os.path.join(model_dir, SERVING_FILE), {"model": configs.get_network(model).name,
                                                       "num_classes": len(class_names),
                                                       "class_names": list(class_names),
                                                       "preprocessing": prep.to_json()})


@dataclasses.dataclass
class RunModel:
    """A trained run ready to serve: weights, network name, class names and preprocessing."""
    params: ParamStore
    model: str
    class_names: tuple
    prep: Preprocessing
    checkpoint: str

    @property
    def num_classes(self):
        return len(self.class_names)

    def probabilities(self, images):
        """Network input ``[N, S, S, C]`` (``prep``'s output) -> softmax ``[N, classes]``."""
        return inference_op(images, self.params, 1.0, self.model, self.num_classes)[1]

    def load_image(self, path):
        """An image file -> the network input ``[S, S, C]`` the run evaluated with."""
        return self.prep.eval_input(read_image(path))


def load_run(model_dir):
    """The ``RunModel`` of a ``tfvgg.train`` run directory: its best checkpoint, else its latest."""
    info = read_run_json(model_dir, SERVING_FILE)
    p = ParamStore()
    restored = None
    for directory in (BEST_DIR, "checkpoints"):
        restored = Checkpointer(p, os.path.join(model_dir, directory)).restore()
        if restored:
            break
    if restored is None:
        raise FileNotFoundError(f"{model_dir}: no checkpoint yet")
    return RunModel(p, info["model"], tuple(info["class_names"]), Preprocessing.from_json(info["preprocessing"]),
                    restored)
