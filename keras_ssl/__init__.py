"""keras_ssl: self-supervised and internal-pretext-task learning for Keras 3."""

# First, so that torchvision / timm imported after us cannot segfault.
from keras_ssl.utils.native_imports import guard_triton_import

guard_triton_import()


from keras_ssl import hub
from keras_ssl import data
from keras_ssl import distribute
from keras_ssl import evaluation
from keras_ssl import layers
from keras_ssl import methods
from keras_ssl import models
from keras_ssl import ops
from keras_ssl import optimizers
from keras_ssl import recipes
from keras_ssl import visualization
from keras_ssl.version import __version__
