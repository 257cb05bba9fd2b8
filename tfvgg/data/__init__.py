"""Training data: in-memory arrays (IDX files, scikit-learn's digits) and streamed sets (image folders, TFRecords).

``arrays``: loaders returning NumPy arrays and ``to_tf_dataset``.
"""
from tfvgg.data.arrays import (DATASETS, FASHION_MNIST_CLASSES, IDX_DTYPES, IMAGE_EXTENSIONS, MNIST_FILES, Dataset,
                               load_dataset, load_digits, load_image_folder, load_mnist, read_idx, to_tf_dataset)

__all__ = ["DATASETS", "FASHION_MNIST_CLASSES", "IDX_DTYPES", "IMAGE_EXTENSIONS", "MNIST_FILES", "Dataset",
           "load_dataset", "load_digits", "load_image_folder", "load_mnist", "read_idx", "to_tf_dataset"]
