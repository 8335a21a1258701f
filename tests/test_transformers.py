"""CRATE and ViT backbones: interface, exactness and presets."""

import keras
import keras_hub
import numpy as np
import pytest
import torch
from torch import nn

from keras_ssl.models import CRATEBackbone
from keras_ssl.models import CRATEImageClassifier
from keras_ssl.models import CRATEImageClassifierPreprocessor
from keras_ssl.models import CRATEImageConverter
from keras_ssl.models import ViTBackbone
from keras_ssl.models import ViTImageClassifier
from keras_ssl.models import ViTImageClassifierPreprocessor
from keras_ssl.models import ViTImageConverter
from keras_ssl.models.crate.crate_checkpoint import load_crate_state_dict
from keras_ssl.models.vit.vit_checkpoint import load_timm_vit_state_dict
from tests.conftest import to_numpy
from tests.torch_references import ReferenceCRATE

pytestmark = pytest.mark.multibackend

FAMILIES = {
    "crate": (
        CRATEBackbone,
        CRATEImageClassifier,
        CRATEImageClassifierPreprocessor,
        CRATEImageConverter,
    ),
    "vit": (
        ViTBackbone,
        ViTImageClassifier,
        ViTImageClassifierPreprocessor,
        ViTImageConverter,
    ),
}


def small_backbone(family, **kwargs):
    arguments = dict(
        image_shape=(16, 16, 3), patch_size=4, num_layers=2, hidden_dim=24,
        num_heads=3,
    )
    if family == "vit":
        arguments["mlp_dim"] = 48
    arguments.update(kwargs)
    return FAMILIES[family][0](**arguments)


def small_classifier(family, num_classes=5, **kwargs):
    _, classifier_cls, preprocessor_cls, converter_cls = FAMILIES[family]
    preprocessor = preprocessor_cls(converter_cls(image_size=(16, 16)))
    return classifier_cls(
        small_backbone(family), num_classes, preprocessor=preprocessor,
        **kwargs,
    )


def random_images(batch=2, size=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(batch, size, size, 3)).astype("float32")


@pytest.mark.parametrize("family", FAMILIES)
def test_output_shape_and_config_round_trip(family):
    backbone = small_backbone(family)
    images = random_images()
    outputs = to_numpy(backbone(images))
    assert outputs.shape == (2, 1 + 16, 24)
    restored = type(backbone).from_config(backbone.get_config())
    restored.set_weights(backbone.get_weights())
    np.testing.assert_allclose(to_numpy(restored(images)), outputs, atol=1e-6)
    assert restored.get_config() == backbone.get_config()


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("size", ["tiny", "small", "base", "large"])
def test_named_sizes_match_the_papers(family, size):
    expected = {
        "crate": {
            "tiny": (384, 6, 12), "small": (576, 12, 12),
            "base": (768, 12, 12), "large": (1024, 16, 24),
        },
        "vit": {
            "tiny": (192, 3, 12), "small": (384, 6, 12),
            "base": (768, 12, 12), "large": (1024, 16, 24),
        },
    }[family][size]
    sizes = FAMILIES[family][0].named_sizes[size]
    assert (sizes["hidden_dim"], sizes["num_heads"], sizes["num_layers"]) == (
        expected
    )
    if family == "vit":
        assert sizes["mlp_dim"] == 4 * sizes["hidden_dim"]


@pytest.mark.parametrize("family", FAMILIES)
def test_piece_by_piece_equals_the_backbone(family):
    backbone = small_backbone(family)
    images = random_images()
    tokens = backbone.embed(images)
    for block in backbone.blocks:
        tokens = block(tokens)
    np.testing.assert_allclose(
        to_numpy(backbone.final_norm(tokens)), to_numpy(backbone(images)),
        atol=1e-5,
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_attention_probabilities_and_post_softmax_mask(family):
    backbone = small_backbone(family)
    tokens = backbone.embed(random_images())
    block = backbone.blocks[-1]
    outputs, attention = block(tokens, return_attention=True)
    attention = to_numpy(attention)
    assert attention.shape == (2, 3, 17, 17)
    np.testing.assert_allclose(attention.sum(-1), 1.0, atol=1e-5)
    # The attention-returning path computes the same block output.
    np.testing.assert_allclose(
        to_numpy(outputs), to_numpy(block(tokens)), atol=1e-5
    )

    # Remove head 1's attention to keys 3 and 7 of sample 0 only.
    multiplier = np.ones((2, 3, 17, 17), "float32")
    multiplier[0, 1, :, [3, 7]] = 0.0
    masked_outputs, masked = block(
        tokens, attention_multiplier=multiplier, return_attention=True
    )
    masked = to_numpy(masked)
    np.testing.assert_array_equal(masked[0, 1, :, [3, 7]], 0.0)
    keep = multiplier.astype(bool)
    np.testing.assert_allclose(masked[keep], attention[keep], atol=1e-6)
    # No renormalisation: the masked rows now sum to less than one.
    assert np.all(masked[0, 1].sum(-1) < 1.0 - 1e-4)
    # Only sample 0 changes.
    masked_outputs = to_numpy(masked_outputs)
    np.testing.assert_allclose(masked_outputs[1], to_numpy(outputs)[1], atol=1e-5)
    assert np.abs(masked_outputs[0] - to_numpy(outputs)[0]).max() > 1e-4


@pytest.mark.parametrize("family", FAMILIES)
def test_mask_token_replaces_exactly_the_chosen_tokens(family):
    backbone = small_backbone(family)
    images = random_images()
    token_mask = np.zeros((2, 16), bool)
    token_mask[0, [0, 5]] = True
    token_mask[1, 15] = True
    plain = to_numpy(backbone.embed(images))
    masked = to_numpy(backbone.embed(images, token_mask=token_mask))
    embedding = backbone.token_embedding
    expected_masked = to_numpy(embedding.mask_token)[0, 0] + to_numpy(
        embedding.position_embedding
    )[0]
    changed = np.zeros((2, 17), bool)
    changed[:, 1:] = token_mask
    np.testing.assert_allclose(masked[~changed], plain[~changed], atol=1e-6)
    for sample, position in zip(*np.nonzero(changed)):
        np.testing.assert_allclose(
            masked[sample, position], expected_masked[position], atol=1e-6
        )
        assert np.abs(masked[sample, position] - plain[sample, position]).max() > 1e-3


@pytest.mark.parametrize("family", FAMILIES)
def test_mask_token_is_frozen_until_a_method_trains_it(family):
    backbone = small_backbone(family)
    mask_token = backbone.token_embedding.mask_token
    trainable = lambda: {v.path for v in backbone.trainable_variables}
    assert mask_token.path not in trainable()
    mask_token.trainable = True
    assert mask_token.path in trainable()


@pytest.mark.parametrize("family", FAMILIES)
def test_bad_input_gets_clear_errors(family):
    backbone = small_backbone(family)
    with pytest.raises(ValueError, match="batch axis"):
        backbone(np.zeros((16, 16, 3), "float32"))
    with pytest.raises(ValueError, match="has 1 channels but the model expects 3"):
        backbone(np.zeros((1, 16, 16, 1), "float32"))
    with pytest.raises(ValueError, match="channels-first"):
        backbone(np.zeros((1, 3, 16, 16), "float32"))
    with pytest.raises(ValueError, match="built for 16x16 images"):
        backbone(np.zeros((1, 32, 32, 3), "float32"))
    with pytest.raises(ValueError, match="not divisible by `patch_size`"):
        small_backbone(family, image_shape=(18, 18, 3))
    with pytest.raises(ValueError, match="Choose one of"):
        FAMILIES[family][0].from_size("huge")


@pytest.mark.parametrize("family", FAMILIES)
def test_preset_round_trip_through_keras_hub_base_classes(family, tmp_path):
    classifier = small_classifier(family)
    images = np.random.default_rng(1).integers(0, 256, (3, 16, 16, 3))
    expected = to_numpy(classifier.predict(images, verbose=0))
    classifier.save_to_preset(str(tmp_path))
    for loader in (type(classifier), keras_hub.models.ImageClassifier):
        restored = loader.from_preset(str(tmp_path))
        assert type(restored) is type(classifier)
        np.testing.assert_array_equal(
            to_numpy(restored.predict(images, verbose=0)), expected
        )
    backbone = keras_hub.models.Backbone.from_preset(str(tmp_path))
    assert type(backbone) is type(classifier.backbone)
    np.testing.assert_array_equal(
        to_numpy(backbone(classifier.preprocessor(images))),
        to_numpy(classifier.backbone(classifier.preprocessor(images))),
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_mixed_precision_forward(family):
    keras.config.set_dtype_policy("mixed_float16")
    backbone = small_backbone(family)
    tokens, attention = backbone.blocks[0](
        backbone.embed(random_images()), return_attention=True
    )
    assert keras.backend.standardize_dtype(tokens.dtype) == "float16"
    np.testing.assert_allclose(
        to_numpy(attention).astype("float32").sum(-1), 1.0, atol=2e-3
    )


# --- Exactness against PyTorch references ---


def _randomise_norms(module):
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, nn.LayerNorm):
                layer.weight.normal_(1.0, 0.2)
                layer.bias.normal_(0.0, 0.2)


def test_crate_matches_pytorch_reference():
    torch.manual_seed(0)
    reference = ReferenceCRATE(16, 4, dim=24, depth=2, heads=3, dim_head=8, classes=5)
    _randomise_norms(reference)
    reference.eval()
    classifier = CRATEImageClassifier(small_backbone("crate"), 5)
    load_crate_state_dict(classifier, reference.state_dict())
    images = random_images(batch=3)
    with torch.no_grad():
        expected = reference(torch.tensor(images).permute(0, 3, 1, 2)).numpy()
    np.testing.assert_allclose(
        to_numpy(classifier(images)), expected, atol=1e-5, rtol=0
    )


def test_vit_matches_timm():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    reference = timm.create_model(
        "vit_tiny_patch16_224", pretrained=False, img_size=16, patch_size=4,
        embed_dim=24, depth=2, num_heads=3, mlp_ratio=2.0, num_classes=5,
    )
    _randomise_norms(reference)
    with torch.no_grad():
        reference.head.weight.normal_()
        reference.pos_embed.normal_()
        reference.cls_token.normal_()
    reference.eval()
    classifier = ViTImageClassifier(small_backbone("vit"), 5)
    load_timm_vit_state_dict(classifier, reference.state_dict())
    images = random_images(batch=3)
    with torch.no_grad():
        expected = reference(torch.tensor(images).permute(0, 3, 1, 2)).numpy()
    np.testing.assert_allclose(
        to_numpy(classifier(images)), expected, atol=1e-5, rtol=0
    )


def test_checkpoint_mismatch_names_the_first_offending_parameter():
    torch.manual_seed(0)
    reference = ReferenceCRATE(16, 4, dim=24, depth=2, heads=3, dim_head=8, classes=5)
    state = reference.state_dict()
    classifier = CRATEImageClassifier(small_backbone("crate"), 5)
    missing = {k: v for k, v in state.items() if k != "transformer.layers.1.1.fn.weight"}
    with pytest.raises(ValueError, match="no parameter 'transformer.layers.1.1.fn.weight'"):
        load_crate_state_dict(classifier, missing)
    wrong = dict(state, **{"mlp_head.1.weight": torch.zeros(7, 24)})
    with pytest.raises(ValueError, match="Shape mismatch for 'mlp_head.1.weight'"):
        load_crate_state_dict(classifier, wrong)
    extra = dict(state, **{"transformer.layers.2.0.norm.weight": torch.ones(24)})
    with pytest.raises(ValueError, match="starting with 'transformer.layers.2.0.norm.weight'"):
        load_crate_state_dict(classifier, extra)


def test_position_embeddings_resample_as_timm_does(tmp_path):
    timm = pytest.importorskip("timm")
    from timm.layers import resample_abs_pos_embed

    backbone = small_backbone("vit")
    position = to_numpy(backbone.token_embedding.position_embedding)
    backbone.save_to_preset(str(tmp_path))
    for side in (8, 28):  # 2x2 and 7x7 grids from the trained 4x4
        resized = ViTBackbone.from_preset(
            str(tmp_path), image_shape=(side, side, 3)
        )
        expected = resample_abs_pos_embed(
            torch.tensor(position), new_size=(side // 4, side // 4),
            num_prefix_tokens=1,
        ).numpy()
        np.testing.assert_allclose(
            to_numpy(resized.token_embedding.position_embedding), expected,
            atol=1e-5,
        )
        assert to_numpy(resized(random_images(1, side))).shape == (
            1, 1 + (side // 4) ** 2, 24,
        )
