"""Evaluation protocols of self-supervised learning: k-NN, linear probe,
fine-tune,
occlusion robustness, CAM localisation."""

from keras_ssl.evaluation.features import FeatureExtractor
from keras_ssl.evaluation.features import extract_features
from keras_ssl.evaluation.knn import knn_classify
from keras_ssl.evaluation.probes import ProbeResult
from keras_ssl.evaluation.probes import fine_tune
from keras_ssl.evaluation.probes import linear_probe
from keras_ssl.evaluation.localization import box_iou
from keras_ssl.evaluation.localization import cam_boxes
from keras_ssl.evaluation.localization import cam_localization
from keras_ssl.evaluation.occlusion import attention_occlusion
from keras_ssl.evaluation.occlusion import feature_maps
from keras_ssl.evaluation.occlusion import occlusion_robustness
from keras_ssl.evaluation.occlusion import random_occlusion
