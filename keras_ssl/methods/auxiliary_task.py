import weakref

import keras
from keras import ops


class AuxiliaryTask(keras.layers.Layer):
    """Base of the auxiliary losses that ride on `Supervised`'s forward pass.

    HPAH, MPAH and SFE add a weighted loss to the supervised one from what
    the network computes anyway (attention maps, intermediate tokens, stage
    features). `Supervised(..., auxiliary_tasks=[...])` runs the backbone
    once, piece by piece, records what the tasks ask for in a `trace`
    dict, and hands it to every task, so tasks stack (HPAH with SFE, say)
    and the supervised path is written once.

    A subclass implements:
    - `attach(model)`: validate the backbone, create its heads; may set
      `attention_layers` (indices of blocks whose attention it reads).
    - `call(trace, training)`: the task's forward pass, run inside the
      model's `call` (random draws belong here: Keras tracks seed state
      there on every backend); returns a dict of tensors.
    - `compute_task_loss(outputs, labels)`: the unweighted loss.
    - `update_task_metrics(outputs, labels)`: optional metric updates.

    The trace holds `"images"` (preprocessed), `"logits"`, `"features"`
    (pooled), and for token backbones `"block_inputs"`, `"block_outputs"`
    (lists over blocks) and `"attention"` (dict block index -> `[B, H, T,
    T]`); for ResNets `"stage_outputs"`.

    A task that trains on transformed copies of the batch (SLA's rotations,
    SFE's propagated dropped-channel maps) sets `expands_batch_after` and
    implements `expand_batch(x)`: at that point of the forward pass the
    host appends the copies after the B originals, so one pass — and one
    set of BatchNorm batch statistics — covers originals and copies, as the
    papers concatenate them. That task's trace holds every row (originals
    first); the supervised loss and the other tasks see the B originals.

    Args:
        weight: float. Weight of the task's loss in the total.
        **kwargs: base layer arguments (`name`, ...).
    """

    attention_layers = ()
    # None, "input" (the preprocessed images) or the index of the block or
    # stage whose output gets the transformed copies.
    expands_batch_after = None

    def __init__(self, weight=1.0, **kwargs):
        super().__init__(**kwargs)
        self.weight = weight

    def attach(self, model):
        """Checks the backbone and builds the task's layers.

        Subclasses call this first; it keeps a weak reference to the model
        (a plain attribute would make the model a tracked sublayer of its
        own task).
        """
        self._host = weakref.ref(model)

    def host_model(self):
        """The `Supervised` model the task is attached to."""
        # A method, not a property: Keras' saving walks properties.
        return self._host()

    def build(self, input_shape=None):
        # A task builds its layers in `attach`, once the backbone is known.
        self.built = True

    def expand_batch(self, x):
        """Transformed copies of `x` (`[B, ...]`) as `[n * B, ...]`, to be
        appended to the batch at `expands_batch_after`."""
        raise NotImplementedError

    def compute_task_loss(self, outputs, labels):
        raise NotImplementedError

    def update_task_metrics(self, outputs, labels):
        """Updates the task's metrics (reported next to the loss)."""

    def get_config(self):
        config = super().get_config()
        config.update({"weight": self.weight})
        return config


def resolve_layer_index(layer_index, num_layers, argument="layer_index"):
    """Turns a possibly negative block index into 0..num_layers-1."""
    if not -num_layers <= layer_index < num_layers:
        raise ValueError(
            f"`{argument}`={layer_index} is out of range for a backbone with "
            f"{num_layers} blocks; use 0..{num_layers - 1} or a negative "
            "index (-1 is the last block)."
        )
    return layer_index % num_layers


def sparse_cross_entropy(labels, logits):
    """Mean sparse categorical cross-entropy on logits, in float32."""
    return ops.mean(
        keras.losses.sparse_categorical_crossentropy(
            labels, ops.cast(logits, "float32"), from_logits=True
        )
    )
