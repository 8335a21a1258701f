"""Shared differentiable pieces of the methods (backend-agnostic `keras.ops`)."""

from keras_ssl.ops.channel_groups import channel_drop_masks
from keras_ssl.ops.channel_groups import channel_groups
from keras_ssl.ops.joint_labels import conditional_logits
from keras_ssl.ops.joint_labels import joint_cross_entropy
from keras_ssl.ops.joint_labels import joint_labels
from keras_ssl.ops.joint_labels import self_distillation_loss
from keras_ssl.ops.rotation import rotate_images
from keras_ssl.ops.patches import all_rotations
from keras_ssl.ops.patches import paste_patches
from keras_ssl.ops.patches import patch_size_for
from keras_ssl.ops.patches import patched_rotations
