"""Convert a timm ViT / DeiT or ResNet checkpoint into a keras_ssl preset.

Run `python scripts/convert_timm.py --help` for the options.
"""

from keras_ssl.models.converters.cli import run

EXAMPLES = """\
  python scripts/convert_timm.py hf://timm/vit_small_patch16_224.augreg_in21k vit_s16_in21k
  python scripts/convert_timm.py hf://timm/resnet50.a1_in1k resnet50_a1
  python scripts/convert_timm.py deit_small.pth deit_s --architecture deit_small_patch16_224
"""

if __name__ == "__main__":
    run(("timm",), __doc__.splitlines()[0], EXAMPLES)
