from keras_ssl.methods.supervised import Supervised
