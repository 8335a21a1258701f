"""ResNet presets (none published yet)."""

backbone_presets = {}
