"""MST: masked self-supervised transformer.

Li et al. 2021, "MST: Masked Self-Supervised Transformer for Visual
Representation" (NeurIPS). DINO (`keras_ssl.methods.dino`) with two
additions: the student's global views have some low-attention patch tokens
replaced by a learned [MASK] embedding (the teacher's class-token attention
picks the candidates, Eq. 4-6), and a convolutional decoder restores the
whole input view from the student's patch tokens (L1, Eq. 9-11).
"""

import math

import keras
from keras import ops

from keras_ssl.distribute.replicas import draw_for_replica
from keras_ssl.methods.dino import DINO
from keras_ssl.methods.dino import _check_fraction

MASK_STRATEGIES = ("attention", "random", "none")


@keras.saving.register_keras_serializable(package="keras_ssl")
class GlobalImageDecoder(keras.layers.Layer):
    """MST's global image decoder: patch tokens back to an image.

    The tokens `[B, rows * cols, D]` are laid out as a `[B, rows, cols, D]`
    map; `log2(patch_size)` stages of [Conv3x3, BatchNorm, ReLU, 2x
    nearest upsampling] bring it to full resolution (only 2x steps, as the
    paper prescribes), and a 3x3 convolution gives the channels.

    Args:
        patch_size: int, a power of 2.
        filters: list of ints, one per stage, or None to halve the token
            width at each stage (at least 16).
        channels: int. Output channels.
        **kwargs: base layer arguments.
    """

    def __init__(self, patch_size, filters=None, channels=3, **kwargs):
        super().__init__(**kwargs)
        stages = int(round(math.log2(patch_size))) if patch_size > 0 else -1
        if stages < 1 or 2**stages != patch_size:
            raise ValueError(
                "MST's decoder upsamples by 2x steps, so the backbone's "
                f"`patch_size` must be a power of 2 (4, 8, 16); it is "
                f"{patch_size}."
            )
        if filters is not None and len(filters) != stages:
            raise ValueError(
                f"`decoder_filters` needs one width per upsampling stage "
                f"({stages} for patch size {patch_size}); received {filters}."
            )
        self.patch_size = patch_size
        self.filters = None if filters is None else list(filters)
        self.channels = channels
        self.num_stages = stages

    def build(self, input_shape):
        width = input_shape[-1]
        filters = self.filters or [
            max(width // 2 ** (i + 1), 16) for i in range(self.num_stages)
        ]
        policy = self.dtype_policy
        self.stages = []
        for i, units in enumerate(filters):
            self.stages += [
                keras.layers.Conv2D(units, 3, padding="same", use_bias=False,
                                    dtype=policy, name=f"conv_{i}"),
                keras.layers.BatchNormalization(dtype=policy, name=f"bn_{i}"),
                keras.layers.ReLU(dtype=policy, name=f"relu_{i}"),
                keras.layers.UpSampling2D(2, dtype=policy, name=f"up_{i}"),
            ]
        self.output_conv = keras.layers.Conv2D(
            self.channels, 3, padding="same", dtype=policy, name="output_conv"
        )

    def call(self, patch_tokens, grid_size, training=None):
        maps = ops.reshape(patch_tokens, (-1,) + tuple(grid_size)
                           + (patch_tokens.shape[-1],))
        for layer in self.stages:
            maps = layer(maps, training=training)
        return self.output_conv(maps)

    def get_config(self):
        config = super().get_config()
        config.update({"patch_size": self.patch_size, "filters": self.filters,
                       "channels": self.channels})
        return config


@keras.saving.register_keras_serializable(package="keras_ssl")
class MST(DINO):
    """MST: DINO with attention-guided masking and image restoration.

    Li et al. 2021, "MST: Masked Self-Supervised Transformer for Visual
    Representation". On each global view the teacher's last-layer
    class-token attention over the patches, averaged over heads (Eq. 4),
    ranks the patches; the lowest `candidate_fraction` (the paper's 1/num)
    are candidates, and each candidate is masked with probability
    `mask_probability` (Eq. 5): its token becomes the backbone's learned
    [MASK] embedding after the patch projection (Eq. 6, appendix K). Only
    the student's global views are masked; the teacher and the local crops
    see every patch, and the highest-attention patches are never masked.
    `mask_strategy="random"` masks every patch with probability
    `mask_probability` (Eq. 3, Table 4's random mask), `"none"` trains DINO
    plus restoration.

    The student's final patch tokens of each global view go through a
    `GlobalImageDecoder` to the full-resolution view; the L1 distance to
    the (preprocessed, unmasked) view is the restoration loss. The total is
    `dino_weight * L_dino + restoration_weight * L_restore` (Eq. 11). The
    decoder's BatchNorm only ever sees global views (appendix C).

    Defaults: `candidate_fraction=1/8`, `mask_probability=0.1`, the best
    cell of the paper's Table 5 (73.9 %, and num = 8 is the row robust to
    every p); `restoration_weight=0.6` (Section 4.1). Every DINO argument
    applies (see `DINO`).

    Args:
        backbone: a transformer backbone whose `patch_size` is a power of 2.
        mask_strategy: "attention", "random" or "none".
        candidate_fraction: float in (0, 1]. Share of lowest-attention
            patches that are mask candidates (1/num; 1 = every patch).
        mask_probability: float in (0, 1]. Probability that a candidate is
            masked (p).
        dino_weight: float. lambda_1.
        restoration_weight: float. lambda_2.
        decoder_filters: list of ints (one per 2x stage) or None.
        seed: int or None. Seeds the mask draws.
        **kwargs: `DINO` arguments (`out_dim`, temperatures, momenta, ...).

    Example:
    ```python
    backbone = keras_ssl.models.ViTBackbone.from_size(
        "tiny", image_shape=(32, 32, 3), patch_size=4
    )
    model = keras_ssl.methods.MST(backbone, out_dim=4096)
    model.compile(optimizer=keras.optimizers.AdamW(5e-4, clipnorm=3.0))
    crops = keras_ssl.data.multi_crop(32, 16, num_local=6, colour=True)
    model.fit(keras_ssl.data.load_dataset("sample", augment=crops), epochs=10)
    ```
    """

    def __init__(
        self,
        backbone,
        mask_strategy="attention",
        candidate_fraction=0.125,
        mask_probability=0.1,
        dino_weight=1.0,
        restoration_weight=0.6,
        decoder_filters=None,
        seed=None,
        **kwargs,
    ):
        if mask_strategy not in MASK_STRATEGIES:
            raise ValueError(
                f"`mask_strategy` must be one of {MASK_STRATEGIES}; received "
                f"{mask_strategy!r}."
            )
        _check_fraction(candidate_fraction, "candidate_fraction", example="0.125")
        _check_fraction(mask_probability, "mask_probability", example="0.1")
        self.mask_strategy = mask_strategy
        self.candidate_fraction = float(candidate_fraction)
        self.mask_probability = float(mask_probability)
        super().__init__(backbone, **kwargs)
        self.dino_weight = dino_weight
        self.restoration_weight = restoration_weight
        self.decoder_filters = decoder_filters
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.decoder = GlobalImageDecoder(
            backbone.patch_size, decoder_filters,
            channels=backbone.image_shape[-1], name="decoder",
        )
        self.decoder.build((None, backbone.num_patches, backbone.hidden_dim))
        self.restoration_loss_tracker = keras.metrics.Mean(name="restoration_loss")

    def prepare_backbone(self, backbone):
        if self.mask_strategy != "none":
            backbone.token_embedding.learn_mask_token()

    def patch_importance(self, attention):
        """Eq. 4: class-token attention over the patches, mean over heads:
        `[B, N]` from `[B, H, 1 + N, 1 + N]`."""
        return ops.mean(ops.cast(attention[:, :, 0, 1:], "float32"), axis=1)

    def mask_candidates(self, importance):
        """True for the `candidate_fraction` lowest-importance patches of
        each image, `[B, N]`."""
        num_patches = importance.shape[-1]
        count = int(num_patches * self.candidate_fraction)
        if count < 1:
            raise ValueError(
                f"`candidate_fraction`={self.candidate_fraction} of "
                f"{num_patches} patches selects no candidate; use at least "
                f"{1 / num_patches:.3g}."
            )
        ranks = ops.argsort(ops.argsort(importance, axis=-1), axis=-1)
        return ranks < count

    def global_token_mask(self, attention, training):
        if not training or self.mask_strategy == "none":
            return None
        importance = self.patch_importance(attention)
        # Rows are the global views' images, view after view.
        views = self.num_global_crops
        per_view = ops.reshape(importance, (views, -1, importance.shape[-1]))
        draw = draw_for_replica(
            lambda count: keras.random.uniform(
                (views, count, importance.shape[-1]), seed=self.seed_generator
            ),
            ops.shape(per_view)[1],
            axis=1,
        )
        mask = ops.reshape(draw, ops.shape(importance)) < self.mask_probability
        if self.mask_strategy == "attention":
            mask = ops.logical_and(mask, self.mask_candidates(importance))
        return mask

    def extra_outputs(self, global_images, global_tokens, token_mask, training):
        restored = self.decoder(
            global_tokens[:, 1:], grid_size=self.backbone.grid_size,
            training=training,
        )
        outputs = {"restored": restored,
                   "restoration_target": ops.stop_gradient(global_images)}
        if token_mask is not None:
            outputs["token_mask"] = token_mask
        return outputs

    def total_loss(self, dino_loss, y_pred):
        # Eq. 9: the mean absolute error over pixels, both global views.
        restoration = ops.mean(ops.abs(
            ops.cast(y_pred["restored"], "float32")
            - ops.cast(y_pred["restoration_target"], "float32")
        ))
        self.restoration_loss_tracker.update_state(restoration)
        return self.dino_weight * dino_loss + self.restoration_weight * restoration

    def get_config(self):
        config = super().get_config()
        config.update({
            "mask_strategy": self.mask_strategy,
            "candidate_fraction": self.candidate_fraction,
            "mask_probability": self.mask_probability,
            "dino_weight": self.dino_weight,
            "restoration_weight": self.restoration_weight,
            "decoder_filters": self.decoder_filters,
            "seed": self.seed,
        })
        return config
