"""Convert a torchvision ResNet-18/34/50/101/152 state dict into a keras_ssl preset.

Run `python scripts/convert_torchvision.py --help` for the options.
"""

from keras_ssl.models.converters.cli import run

EXAMPLES = """\
  python scripts/convert_torchvision.py resnet18-f37072fd.pth resnet18_in1k
  python scripts/convert_torchvision.py resnet50.pth resnet50 --num-classes 102
"""

if __name__ == "__main__":
    run(("torchvision",), __doc__.splitlines()[0], EXAMPLES)
