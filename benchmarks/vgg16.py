"""Time VGG-16 forward and forward-backward passes: ``python -m benchmarks.vgg16 --batch_size=32``."""
from benchmarks import cnn

if __name__ == "__main__":
    cnn.run(default_model="D")
