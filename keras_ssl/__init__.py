"""keras_ssl: self-supervised and internal-pretext-task learning for Keras 3."""

from keras_ssl import hub
from keras_ssl import data
from keras_ssl import evaluation
from keras_ssl import layers
from keras_ssl import methods
from keras_ssl import models
from keras_ssl import ops
from keras_ssl import optimizers
from keras_ssl import recipes
from keras_ssl import visualization
from keras_ssl.version import __version__
