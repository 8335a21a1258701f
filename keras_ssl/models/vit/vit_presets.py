"""ViT presets trained or converted for keras_ssl (none published yet)."""

backbone_presets = {}
