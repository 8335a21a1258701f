from keras_ssl.visualization.attention import class_token_attention
from keras_ssl.visualization.attention import plot_attention_heads
from keras_ssl.visualization.cam import class_activation_maps
from keras_ssl.visualization.cam import plot_cam
from keras_ssl.visualization.gradcam import gradcam_maps
from keras_ssl.visualization.gradcam import plot_gradcam
from keras_ssl.visualization.tsne import plot_tsne
from keras_ssl.visualization.tsne import tsne_embedding
