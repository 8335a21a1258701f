"""Convert an official CRATE or CRATE-alpha checkpoint into a keras_ssl preset.

Run `python scripts/convert_crate.py --help` for the options.
"""

from keras_ssl.models.converters.cli import run

EXAMPLES = """\
  python scripts/convert_crate.py crate_base.pth crate_base --num-heads 12
  python scripts/convert_crate.py alpha_B16.pth alpha_b16 --source crate_alpha
  python scripts/convert_crate.py hf://OWNER/REPO/torch/FILE.pth out --source crate_alpha
"""

if __name__ == "__main__":
    run(("crate", "crate_alpha"), __doc__.splitlines()[0], EXAMPLES)
