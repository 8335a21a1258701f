"""Evaluation protocols of self-supervised learning: k-NN, linear probe,
fine-tune."""

from keras_ssl.evaluation.features import FeatureExtractor
from keras_ssl.evaluation.features import extract_features
from keras_ssl.evaluation.knn import knn_classify
from keras_ssl.evaluation.probes import ProbeResult
from keras_ssl.evaluation.probes import fine_tune
from keras_ssl.evaluation.probes import linear_probe
