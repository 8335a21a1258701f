"""HPAH and MPAH: predicting attention heads as internal pretext tasks.

"Attention Heads Prediction: internal pretext tasks HPAH (the Highest
scoring Patch in the Attention Head) and MPAH (the Masked Patches in the
Attention Head)" — a self-supervised label taken from inside a transformer
(which head a patch belongs to), added to supervised training.
"""

import keras
from keras import ops

from keras_ssl.distribute.replicas import draw_for_replica
from keras_ssl.methods.auxiliary_task import AuxiliaryTask
from keras_ssl.methods.auxiliary_task import resolve_layer_index
from keras_ssl.methods.auxiliary_task import sparse_cross_entropy
from keras_ssl.methods.supervised import Supervised

HEAD_SAMPLING = ("per_sample", "per_batch")


class AttentionHeadTask(AuxiliaryTask):
    """What HPAH and MPAH share: draw a head, rank its patches.

    At block `layer_index`, one head `h` is drawn uniformly (per sample, or
    one per batch — the paper's literal reading), and the class token's
    attention row of that head over the patches, `A_h[:, 0, 1:]`, ranks the
    patches; the `top_k` best are selected. Selection carries no gradient.

    Args:
        top_k: int. Patches selected per sample.
        layer_index: int. Block the task attaches to (-1: the last).
        head_sampling: "per_sample" or "per_batch".
        weight: float. Weight (lambda) of the task's loss.
        seed: int or None. Seed of the head draws.
        **kwargs: base layer arguments.
    """

    def __init__(
        self,
        top_k=1,
        layer_index=-1,
        head_sampling="per_sample",
        weight=0.2,
        seed=None,
        **kwargs,
    ):
        super().__init__(weight=weight, **kwargs)
        if head_sampling not in HEAD_SAMPLING:
            raise ValueError(
                f"`head_sampling` must be one of {HEAD_SAMPLING}; received "
                f"'{head_sampling}'."
            )
        if not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"`top_k` must be a positive int; received {top_k}.")
        self.top_k = top_k
        self.layer_index = layer_index
        self.head_sampling = head_sampling
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.accuracy = keras.metrics.SparseCategoricalAccuracy(
            f"{self.name}_accuracy"
        )
        self.loss_tracker = keras.metrics.Mean(f"{self.name}_loss")

    def attach(self, model):
        super().attach(model)
        backbone = model.backbone
        if not hasattr(backbone, "blocks"):
            raise ValueError(
                f"{type(self).__name__} predicts attention heads, so it needs "
                "a transformer backbone (CRATEBackbone, ViTBackbone); "
                f"received {type(backbone).__name__}, which has no attention."
            )
        self.num_heads = backbone.num_heads
        self.block = resolve_layer_index(self.layer_index, len(backbone.blocks))
        self.attention_layers = (self.block,)
        if self.top_k > backbone.num_patches:
            raise ValueError(
                f"`top_k`={self.top_k} is larger than the {backbone.num_patches}"
                " patches of the backbone; use at most that many."
            )

    def select(self, attention):
        """Draws heads and returns `(heads [B], positions [B, k])`.

        `positions` index the patches (0..N-1, class token excluded).
        """
        attention = ops.stop_gradient(attention)
        batch_size = ops.shape(attention)[0]
        def draw(count):
            return keras.random.randint(
                (count,), 0, self.num_heads, seed=self.seed_generator
            )

        if self.head_sampling == "per_batch":
            heads = draw(1)  # the same on every replica
        else:
            heads = draw_for_replica(draw, batch_size)
        heads = ops.broadcast_to(heads, (batch_size,))
        class_rows = attention[:, :, 0, 1:]  # [B, H, N]
        scores = ops.take_along_axis(
            class_rows, ops.reshape(heads, (-1, 1, 1)), axis=1
        )[:, 0]
        _, positions = ops.top_k(scores, self.top_k)
        return heads, positions

    def compute_task_loss(self, outputs, labels):
        return sparse_cross_entropy(outputs["head_labels"], outputs["head_logits"])

    def update_task_metrics(self, outputs, labels):
        self.accuracy.update_state(outputs["head_labels"], outputs["head_logits"])
        self.loss_tracker.update_state(self.compute_task_loss(outputs, labels))

    def _build_head(self, width):
        self.norm = keras.layers.LayerNormalization(
            epsilon=1e-6, dtype=self.dtype_policy, name="head_norm"
        )
        self.classifier = keras.layers.Dense(
            self.num_heads, dtype=self.dtype_policy, name="head_classifier"
        )
        self.norm.build((None, width))
        self.classifier.build((None, width))

    def predict_heads(self, features):
        return self.classifier(self.norm(features))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "top_k": self.top_k,
                "layer_index": self.layer_index,
                "head_sampling": self.head_sampling,
                "seed": self.seed,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_ssl")
class HighestScoringPatchTask(AttentionHeadTask):
    """HPAH's task: predict the head whose top patch a token is.

    The output tokens of block `layer_index` at the `top_k` positions the
    drawn head attends to most, `z_l[:, pos + 1]`, each become an example
    labelled with the head; a LayerNorm + Dense(num_heads) head predicts
    it. Gradients reach the backbone through those tokens. Extra cost: the
    attention map of one block and a tiny head.

    Args: see `AttentionHeadTask` (`top_k` defaults to 1, as in the paper).
    """

    def __init__(self, top_k=1, name="hpah", **kwargs):
        super().__init__(top_k=top_k, name=name, **kwargs)

    def attach(self, model):
        super().attach(model)
        self._build_head(model.backbone.hidden_dim)

    def call(self, trace, training=None):
        heads, positions = self.select(trace["attention"][self.block])
        tokens = trace["block_outputs"][self.block]
        selected = ops.take_along_axis(
            tokens, ops.expand_dims(positions + 1, -1), axis=1
        )  # [B, k, D]
        return {
            "head_logits": self.predict_heads(selected),
            "head_labels": ops.repeat(
                ops.expand_dims(heads, -1), self.top_k, axis=1
            ),
            "positions": positions,
        }


@keras.saving.register_keras_serializable(package="keras_ssl")
class MaskedPatchesTask(AttentionHeadTask):
    """MPAH's task: predict the head whose top patches were masked out.

    From the normal pass, the drawn head's `top_k` patches are found; block
    `layer_index` then runs again with a post-softmax mask that zeroes that
    head's attention to those keys for every query (no renormalisation,
    other heads untouched); the later blocks, the final norm and the
    classifier's pooling follow as in the classifier, and a LayerNorm +
    Dense(num_heads) head predicts the head from the pooled result. Extra
    cost: one more pass of the blocks from `layer_index` to the end.

    Args: see `AttentionHeadTask` (`top_k` defaults to 3, as in the paper).
    """

    def __init__(self, top_k=3, name="mpah", **kwargs):
        super().__init__(top_k=top_k, name=name, **kwargs)

    def attach(self, model):
        super().attach(model)
        self._build_head(model.backbone.hidden_dim)

    def attention_multiplier(self, heads, positions, num_tokens):
        """`[B, H, 1, T]` ones, zero at (head, selected key) per sample."""
        keys = ops.sum(ops.one_hot(positions + 1, num_tokens), axis=1)
        keys = ops.minimum(keys, 1.0)  # [B, T]
        chosen_head = ops.one_hot(heads, self.num_heads)  # [B, H]
        removed = chosen_head[:, :, None, None] * keys[:, None, None, :]
        return 1.0 - removed

    def call(self, trace, training=None):
        model = self.host_model()
        backbone = model.backbone
        heads, positions = self.select(trace["attention"][self.block])
        tokens = trace["block_inputs"][self.block]
        multiplier = self.attention_multiplier(
            heads, positions, ops.shape(tokens)[1]
        )
        tokens = backbone.blocks[self.block](
            tokens, attention_multiplier=multiplier, training=training
        )
        for block in backbone.blocks[self.block + 1 :]:
            tokens = block(tokens, training=training)
        features = model.classifier.pool(backbone.final_norm(tokens))
        return {
            "head_logits": self.predict_heads(features),
            "head_labels": heads,
            "positions": positions,
            "attention_multiplier": multiplier,
        }


class _AttentionHeadMethod(Supervised):
    task_cls = None

    def __init__(
        self,
        backbone,
        num_classes,
        aux_weight=0.2,
        top_k=1,
        layer_index=-1,
        head_sampling="per_sample",
        seed=None,
        **kwargs,
    ):
        task = self.task_cls(
            top_k=top_k,
            layer_index=layer_index,
            head_sampling=head_sampling,
            weight=aux_weight,
            seed=seed,
        )
        super().__init__(backbone, num_classes, auxiliary_tasks=[task], **kwargs)
        self.aux_weight = aux_weight
        self.top_k = top_k
        self.layer_index = layer_index
        self.head_sampling = head_sampling
        self.seed = seed

    def get_config(self):
        config = super().get_config()
        del config["auxiliary_tasks"]
        config.update(
            {
                "aux_weight": self.aux_weight,
                "top_k": self.top_k,
                "layer_index": self.layer_index,
                "head_sampling": self.head_sampling,
                "seed": self.seed,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_ssl")
class HPAH(_AttentionHeadMethod):
    """Supervised training plus HPAH, the highest-scoring-patch head task.

    `L = CE(y, logits) + aux_weight * CE(h, aux(z_max))`, where `h` is a
    head drawn at random and `z_max` the output tokens of block
    `layer_index` at the `top_k` patches that head's class-token attention
    ranks highest (see `HighestScoringPatchTask`). Inference is the plain
    classifier; `export_classifier` leaves the auxiliary head out.

    Choices the paper leaves open, each an argument: the head is drawn per
    sample (`head_sampling="per_batch"` draws one per batch, the paper's
    literal reading); the scores are the class token's row over the patch
    keys; the auxiliary head is LayerNorm + Dense(num_heads).

    Args:
        backbone: a CRATE or ViT backbone.
        num_classes: int.
        aux_weight: float. lambda, 0.2 in the paper.
        top_k: int. Patches per sample (1 in the paper; ablated 1, 3, 5).
        layer_index: int. Block the task attaches to (the last by default;
            the paper ablates 3, 6, 9, 12).
        head_sampling: "per_sample" or "per_batch".
        seed: int or None. Seed of the head draws.
        **kwargs: `Supervised` arguments (`preprocessor`, `pooling`, ...).

    Example:
    ```python
    backbone = keras_ssl.models.CRATEBackbone.from_size(
        "tiny", image_shape=(32, 32, 3), patch_size=4
    )
    model = keras_ssl.methods.HPAH(backbone, num_classes=10)
    model.compile(optimizer=keras.optimizers.AdamW(5e-5, weight_decay=0.01))
    model.fit(train_data, epochs=10)  # logs loss, accuracy, hpah_accuracy
    ```
    """

    task_cls = HighestScoringPatchTask

    def __init__(self, backbone, num_classes, aux_weight=0.2, top_k=1, **kwargs):
        super().__init__(
            backbone, num_classes, aux_weight=aux_weight, top_k=top_k, **kwargs
        )


@keras.saving.register_keras_serializable(package="keras_ssl")
class MPAH(_AttentionHeadMethod):
    """Supervised training plus MPAH, the masked-patches head task.

    `L = CE(y, logits) + aux_weight * CE(h, aux(z_tilde))`, where `z_tilde`
    is the pooled output of the network re-run from block `layer_index`
    with head `h`'s attention to its `top_k` patches removed after the
    softmax (see `MaskedPatchesTask`). Inference is the plain classifier;
    `export_classifier` leaves the auxiliary head out.

    Args:
        backbone: a CRATE or ViT backbone.
        num_classes: int.
        aux_weight: float. lambda, 0.2 in the paper.
        top_k: int. Masked patches (3 in the paper; ablated 1, 3, 5).
        layer_index: int. Block the task attaches to (the last by default).
        head_sampling: "per_sample" or "per_batch".
        seed: int or None. Seed of the head draws.
        **kwargs: `Supervised` arguments (`preprocessor`, `pooling`, ...).
    """

    task_cls = MaskedPatchesTask

    def __init__(self, backbone, num_classes, aux_weight=0.2, top_k=3, **kwargs):
        super().__init__(
            backbone, num_classes, aux_weight=aux_weight, top_k=top_k, **kwargs
        )
