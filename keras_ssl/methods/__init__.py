from keras_ssl.methods.attention_heads import HPAH
from keras_ssl.methods.attention_heads import MPAH
from keras_ssl.methods.attention_heads import HighestScoringPatchTask
from keras_ssl.methods.attention_heads import MaskedPatchesTask
from keras_ssl.methods.auxiliary_task import AuxiliaryTask
from keras_ssl.methods.supervised import Supervised
