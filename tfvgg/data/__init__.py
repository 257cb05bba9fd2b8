"""Training data: in-memory arrays (IDX files, scikit-learn's digits) and streamed sets (image folders, TFRecords).

``arrays``: loaders returning NumPy arrays and ``to_tf_dataset``. ``sources``: every set as streamed splits
(train, validation, test) behind one interface; ``folders`` and ``records`` index image folders and TFRecord shards
in the ImageNet layout; ``augment`` and ``pipeline``: the paper's augmentation and the batches a run trains on;
``to_tfrecords``: the converter from folders to shards.
"""
from tfvgg.data.arrays import (FASHION_MNIST_CLASSES, IDX_DTYPES, IMAGE_EXTENSIONS, MNIST_FILES, Dataset,
                               load_dataset, load_digits, load_image_folder, load_mnist, read_idx, to_tf_dataset)

# The --dataset names: the array sets, and the streamed folder and imagenet sets.
DATASETS = ("digits", "mnist", "fashion_mnist", "folder", "imagenet")

__all__ = ["DATASETS", "FASHION_MNIST_CLASSES", "IDX_DTYPES", "IMAGE_EXTENSIONS", "MNIST_FILES", "Dataset",
           "load_dataset", "load_digits", "load_image_folder", "load_mnist", "read_idx", "to_tf_dataset"]
