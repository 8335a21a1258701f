"""Datasets and augmentations: TFDS, image folders, arrays, bundled sample."""

from keras_ssl.data.augment import MultiCrop
from keras_ssl.data.augment import cifar_augment
from keras_ssl.data.augment import default_augment
from keras_ssl.data.augment import multi_crop
from keras_ssl.data.augment import pad_and_crop
from keras_ssl.data.augment import random_flip
from keras_ssl.data.augment import random_resized_crop
from keras_ssl.data.contrastive_augment import MoCoV2Augment
from keras_ssl.data.contrastive_augment import SegASViews
from keras_ssl.data.dataset import load_dataset
from keras_ssl.data.sample import load_sample
from keras_ssl.data.sources import DatasetInfo
