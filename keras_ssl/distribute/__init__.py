"""Data-parallel training: MirroredStrategy, JAX DataParallel, several
machines, and mixed precision (`keras_ssl.distribute`)."""

from keras_ssl.distribute.distribution import LEARNING_RATE_SCALING
from keras_ssl.distribute.distribution import MODES
from keras_ssl.distribute.distribution import PRECISIONS
from keras_ssl.distribute.distribution import Distribution
from keras_ssl.distribute.distribution import distribution_scope
from keras_ssl.distribute.distribution import scale_learning_rate
from keras_ssl.distribute.distribution import set_precision
from keras_ssl.distribute.distribution import split_cpu
from keras_ssl.distribute.distribution import synchronize_batch_norm
from keras_ssl.distribute.full_batches import evaluate_top1
from keras_ssl.distribute.full_batches import pad_to_full_batches
from keras_ssl.distribute.multi_worker import ClusterSpec
from keras_ssl.distribute.multi_worker import initialize_workers
from keras_ssl.distribute.multi_worker import launch_local
from keras_ssl.distribute.replicas import draw_for_replica
from keras_ssl.distribute.replicas import gather_replicas
from keras_ssl.distribute.replicas import num_replicas_in_sync
from keras_ssl.distribute.replicas import scale_loss_for_replicas
