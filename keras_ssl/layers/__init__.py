from keras_ssl.layers.attention import MultiHeadSelfAttention
from keras_ssl.layers.resampling import resample_position_grid
from keras_ssl.layers.tokens import ConvPatchEmbedding
from keras_ssl.layers.tokens import DropPath
from keras_ssl.layers.tokens import TokenEmbedding
