"""Importing the PyTorch stack next to keras_ssl does not crash."""

import subprocess
import sys

import keras
import pytest

USE_TIMM_AND_TORCHVISION = (
    "import torchvision, timm, torch\n"
    "model = timm.create_model('resnet18', num_classes=3).eval()\n"
    "print(tuple(model(torch.zeros(1, 3, 32, 32)).shape))\n"
)


def run_python(code):
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600
    )


@pytest.mark.multibackend
def test_timm_and_torchvision_import_after_keras_ssl_and_tensorflow():
    # Without keras_ssl's guard, triton (reached from torchvision through
    # torch._dynamo) segfaults when loaded after TensorFlow: exit code -11.
    orders = ["import keras_ssl\nimport tensorflow\n"]
    if keras.backend.backend() != "torch":
        # On the torch backend `import tensorflow` imports Keras, which
        # imports triton before keras_ssl can guard it: keras_ssl must come
        # first there (README, "Installation").
        orders.append("import tensorflow\nimport keras_ssl\n")
    for order in orders:
        result = run_python(order + USE_TIMM_AND_TORCHVISION)
        assert result.returncode == 0, (order, result.stderr[-3000:])
        assert result.stdout.strip().endswith("(1, 3)"), result.stdout
