"""ViT presets trained here (`weights/<name>/`, recipes in `recipes/`)."""

backbone_presets = {
    "vit_tiny96_patch4_cifar10": {
        "metadata": {
            "description": (
                "ViT (96-d tokens, 6 blocks, 3 heads, 4x4 patches) trained "
                "with labels on CIFAR-10; recipe "
                "recipes/vit_tiny96_patch4_cifar10.yaml."
            ),
            "params": 682_368,
            "path": "vit",
        },
        "kaggle_handle": "hf://keras-ssl/vit_tiny96_patch4_cifar10",
    },
}
