"""What CRATE and ViT backbones share: the piece-by-piece interface."""

import keras
from keras_hub.models import Backbone

from keras_ssl.hub.preset_mixin import PresetMixin
from keras_ssl.utils.validation import check_image_shape
from keras_ssl.utils.validation import static_shape


class TokenBackbone(PresetMixin, Backbone):
    """Base of the transformer backbones (not instantiated directly).

    A subclass creates `patch_embedding`, `token_embedding`,
    `embedding_dropout`, `blocks` (a list of blocks with the signature
    `block(tokens, attention_multiplier=None, return_attention=False)`) and
    `final_norm`, then calls `build_token_model(image_shape)`. Methods then
    compose the parts:

    ```python
    tokens = backbone.embed(images, token_mask=mask)   # [B, 1 + N, D]
    for block in backbone.blocks[:-1]:
        tokens = block(tokens)
    tokens, attention = backbone.blocks[-1](tokens, return_attention=True)
    features = backbone.final_norm(tokens)             # = backbone(images)
    ```
    """

    named_sizes = {}

    @classmethod
    def from_size(cls, size, image_shape=(224, 224, 3), patch_size=16, **kwargs):
        """Builds a named size: "tiny", "small", "base" or "large".

        Args:
            size: str. A key of the class's `named_sizes`.
            image_shape: `(height, width, channels)`.
            patch_size: int.
            **kwargs: any other constructor argument (they override the
                size's values).
        """
        if size not in cls.named_sizes:
            raise ValueError(
                f"Unknown {cls.__name__} size '{size}'. Choose one of "
                f"{sorted(cls.named_sizes)}."
            )
        arguments = {**cls.named_sizes[size], **kwargs}
        return cls(image_shape=image_shape, patch_size=patch_size, **arguments)

    def build_token_model(self, image_shape, **kwargs):
        inputs = keras.Input(shape=image_shape, name="images")
        tokens = self.embed(inputs)
        for block in self.blocks:
            tokens = block(tokens)
        outputs = self.final_norm(tokens)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

    def embed(self, images, token_mask=None, training=None):
        """Patch tokens with class token and positions: `[B, 1 + N, D]`.

        Args:
            images: preprocessed images `[B, H, W, C]`, at `image_shape` or
                another size divisible by the patch size (DINO's local
                crops), whose position embeddings are then interpolated.
            token_mask: optional bool `[B, N]`; true patches are replaced by
                the learned [MASK] token.
            training: bool, whether dropout is active.
        """
        patches = self.patch_embedding(images)
        # `patch_embedding`, not `self.patch_size`: this runs while the
        # constructor builds the functional model, before the config is set.
        size = self.patch_embedding.patch_size
        height, width = static_shape(images)[1:3]
        grid_size = None
        if height is not None and width is not None:
            grid_size = (height // size, width // size)
        tokens = self.token_embedding(
            patches, token_mask=token_mask, grid_size=grid_size
        )
        return self.embedding_dropout(tokens, training=training)

    def __call__(self, inputs, *args, **kwargs):
        full_shape = static_shape(inputs)
        check_image_shape(full_shape, self.image_shape[-1])
        shape = full_shape[1:3]
        if None not in shape and shape != tuple(self.image_shape[:2]):
            raise ValueError(
                f"{type(self).__name__} was built for {self.image_shape[0]}x"
                f"{self.image_shape[1]} images but received {shape[0]}x"
                f"{shape[1]}. Resize the images (the classifier's "
                "preprocessor does), or build the backbone with "
                f"`image_shape=({shape[0]}, {shape[1]}, "
                f"{self.image_shape[-1]})`; saved weights are resampled to "
                "the new grid when loaded."
            )
        return super().__call__(inputs, *args, **kwargs)

    @property
    def grid_size(self):
        """Rows and columns of the patch grid."""
        return self.token_embedding.grid_size

    @property
    def num_patches(self):
        return self.token_embedding.num_patches


def check_patch_grid(image_shape, patch_size):
    """Validates a fixed image shape divisible by the patch size."""
    if len(image_shape) != 3 or None in tuple(image_shape):
        raise ValueError(
            "`image_shape` must be a fixed (height, width, channels) tuple "
            "for a transformer backbone (its position embeddings depend on "
            f"it); received image_shape={image_shape}."
        )
    height, width, _ = image_shape
    if height % patch_size or width % patch_size:
        raise ValueError(
            f"`image_shape` {height}x{width} is not divisible by "
            f"`patch_size`={patch_size}. Choose an image size that is a "
            "multiple of the patch size."
        )
    return height // patch_size, width // patch_size
