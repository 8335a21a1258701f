"""ResNet presets trained here (`weights/<name>/`, recipes in `recipes/`)."""

backbone_presets = {
    "resnet20_cifar10": {
        "metadata": {
            "description": (
                "CIFAR ResNet-20 (projection shortcuts) trained with labels "
                "on CIFAR-10; recipe recipes/resnet20_cifar10.yaml."
            ),
            "params": 273_392,
            "path": "resnet",
        },
        "kaggle_handle": "hf://keras-ssl/resnet20_cifar10",
    },
    "resnet20_cifar10_sfe": {
        "metadata": {
            "description": (
                "CIFAR ResNet-20 trained with SFE (channel-dropping joint "
                "labels, self-distillation) on CIFAR-10; SI inference head; "
                "recipe recipes/resnet20_cifar10_sfe.yaml."
            ),
            "params": 273_392,
            "path": "resnet",
        },
        "kaggle_handle": "hf://keras-ssl/resnet20_cifar10_sfe",
    },
}
