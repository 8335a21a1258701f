"""Convert a keras-hub ViT or ResNet preset into a keras_ssl preset.

Run `python scripts/convert_keras_hub.py --help` for the options.
"""

from keras_ssl.models.converters.cli import run

EXAMPLES = """\
  python scripts/convert_keras_hub.py resnet_50_imagenet resnet50_keras_hub
  python scripts/convert_keras_hub.py ./my_keras_hub_vit_preset vit_ours
"""

if __name__ == "__main__":
    run(("keras_hub",), __doc__.splitlines()[0], EXAMPLES)
