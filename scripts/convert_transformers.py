"""Convert a transformers ViT checkpoint (`google/vit-*`) into a keras_ssl preset.

Run `python scripts/convert_transformers.py --help` for the options.
"""

from keras_ssl.models.converters.cli import run

EXAMPLES = """\
  python scripts/convert_transformers.py hf://google/vit-base-patch16-224-in21k vit_b16_in21k
  python scripts/convert_transformers.py hf://google/vit-base-patch16-224 vit_b16_in1k
"""

if __name__ == "__main__":
    run(("transformers",), __doc__.splitlines()[0], EXAMPLES)
