"""Patch RotNet and Patch RelNet: rotation pretext tasks on pasted patches.

Pham, Mina, Issa and Yoo, "Self-supervised learning with local
attention-aware feature". Each image gives 8 views: its 4 rotations r_k and
4 patched images p_k, the upright image with `resize(r_k)` (bilinear, side
`patch_ratio` x side) pasted at a position drawn per image. Telling the p_k
apart needs the local content of the patch and the global context around
it.
"""

import keras
from keras import ops

from keras_ssl.distribute.replicas import draw_for_replica
from keras_ssl.methods.rotnet import RotationPretext
from keras_ssl.ops import all_rotations
from keras_ssl.ops import patch_size_for
from keras_ssl.ops import patched_rotations


class PatchPretext(RotationPretext):
    """Base of Patch RotNet / Patch RelNet: the 8 views and their checks.

    Args:
        backbone: a keras_ssl backbone with square inputs.
        patch_ratio: float in (0, 1). Patch side / image side (the paper's
            best is 0.4).
        preprocessor: "default", None or a preprocessor layer.
        pooling: None for the family default, or "avg", "token", "mean".
        seed: int or None. Seeds the paste positions drawn in `call`.
        **kwargs: base `keras.Model` arguments.
    """

    def __init__(
        self,
        backbone,
        patch_ratio=0.4,
        preprocessor="default",
        pooling=None,
        seed=None,
        **kwargs,
    ):
        if not isinstance(patch_ratio, (int, float)) or not 0 < patch_ratio < 1:
            raise ValueError(
                "`patch_ratio` is the patch side as a fraction of the image "
                f"side and must be in (0, 1), e.g. 0.4; received {patch_ratio}."
            )
        super().__init__(backbone, preprocessor, pooling, **kwargs)
        self.patch_ratio = float(patch_ratio)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        image_size = getattr(backbone, "image_shape", (None,))[0]
        if image_size is not None:
            self._check_patch_size(image_size)

    def _check_patch_size(self, image_size):
        side = patch_size_for(image_size, self.patch_ratio)
        if side < 2 or side >= image_size:
            raise ValueError(
                f"Images of side {image_size} are too small for "
                f"patch_ratio={self.patch_ratio}: the pasted patch would be "
                f"{side} pixel(s) wide, and it must be at least 2 pixels and "
                "smaller than the image. Use larger images or another "
                "`patch_ratio`."
            )
        return side

    def sample_offsets(self, images):
        """Top-left corners `[B, 2]` drawn uniformly so the patch fits."""
        size = images.shape[1]
        side = self._check_patch_size(size)
        return draw_for_replica(
            lambda count: keras.random.randint(
                (count, 2),
                minval=0,
                maxval=size - side + 1,
                dtype="int32",
                seed=self.seed_generator,
            ),
            ops.shape(images)[0],
        )

    def generate_views(self, images, offsets=None):
        """The 8 views `[B, 8, S, S, C]`: r_0..r_3, then p_0..p_3.

        Args:
            images: `[B, S, S, C]` upright images.
            offsets: `[B, 2]` int patch corners, or None to draw them
                (`sample_offsets`).
        """
        rotations = all_rotations(images)
        if offsets is None:
            offsets = self.sample_offsets(images)
        patched = patched_rotations(images, rotations, self.patch_ratio, offsets)
        return ops.concatenate([rotations, patched], axis=1)

    def get_config(self):
        config = super().get_config()
        config.update({"patch_ratio": self.patch_ratio, "seed": self.seed})
        return config


@keras.saving.register_keras_serializable(package="keras_ssl")
class PatchRotNet(PatchPretext):
    """Patch RotNet: 8-way classification of rotations and patched images.

    Pham et al., "Self-supervised learning with local attention-aware
    feature". The 8 views of each image (r_0..r_3, p_0..p_3, see
    `PatchPretext.generate_views`) are classified separately: encoder
    feature (64-d for the CIFAR ResNets) -> Dense(8), labels 0..3 for r_k and
    4..7 for p_k; the cross-entropy is averaged over the 8 (the paper's
    Eq. 1). `fit` takes unlabelled images or `(images, labels)` whose labels
    it ignores.

    Args:
        backbone: a keras_ssl backbone with square inputs.
        patch_ratio: float in (0, 1). Patch side / image side. Defaults to
            0.4, the paper's choice.
        preprocessor: "default", None or a preprocessor layer.
        pooling: None for the family default, or "avg", "token", "mean".
        seed: int or None. Seeds the paste positions.
        **kwargs: base `keras.Model` arguments.

    Example:
    ```python
    backbone = keras_ssl.models.ResNetBackbone.cifar(depth=8)
    model = keras_ssl.methods.PatchRotNet(backbone, patch_ratio=0.4)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(keras_ssl.data.load_dataset("sample", batch_size=64), epochs=5)
    features = model.backbone.predict(images)  # the pretrained encoder
    ```
    """

    num_pretext_classes = 8

    def __init__(self, backbone, patch_ratio=0.4, preprocessor="default",
                 pooling=None, seed=None, **kwargs):
        super().__init__(backbone, patch_ratio, preprocessor, pooling, seed,
                         **kwargs)
        self.head = keras.layers.Dense(8, name="patch_rotation_head")

    def classify(self, features):
        return self.head(features)


@keras.saving.register_keras_serializable(package="keras_ssl")
class PatchRelNet(PatchPretext):
    """Patch RelNet: predicts k from the pair (r_k, p_k).

    Pham et al., "Self-supervised learning with local attention-aware
    feature". Both images of a pair go through the same encoder; the
    relation module concatenates their features, and Dense(4) predicts the
    rotation k shared by the image and the patch. The cross-entropy is
    averaged over the 4 pairs. `fit` takes unlabelled images or `(images,
    labels)` whose labels it ignores.

    Args:
        backbone: a keras_ssl backbone with square inputs.
        patch_ratio: float in (0, 1). Patch side / image side. Defaults to
            0.4.
        preprocessor: "default", None or a preprocessor layer.
        pooling: None for the family default, or "avg", "token", "mean".
        seed: int or None. Seeds the paste positions.
        **kwargs: base `keras.Model` arguments.

    Example:
    ```python
    backbone = keras_ssl.models.ResNetBackbone.cifar(depth=8)
    model = keras_ssl.methods.PatchRelNet(backbone, patch_ratio=0.4)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(keras_ssl.data.load_dataset("sample", batch_size=64), epochs=5)
    ```
    """

    num_pretext_classes = 4

    def __init__(self, backbone, patch_ratio=0.4, preprocessor="default",
                 pooling=None, seed=None, **kwargs):
        super().__init__(backbone, patch_ratio, preprocessor, pooling, seed,
                         **kwargs)
        self.head = keras.layers.Dense(4, name="relation_head")

    def classify(self, features):
        # Pair k is (r_k, p_k): views k and 4 + k.
        pairs = ops.concatenate([features[:, :4], features[:, 4:]], axis=-1)
        return self.head(pairs)
