"""Which files are weights checkpoints, by extension.

Shared by preset resolution (`keras_ssl.hub`), which must recognise a
weights file inside a Hub repository, and the converters, which read it.
"""

SAFETENSORS_EXTENSIONS = (".safetensors",)
TORCH_EXTENSIONS = (".pth", ".pt", ".bin", ".ckpt", ".pth.tar")
CHECKPOINT_EXTENSIONS = SAFETENSORS_EXTENSIONS + TORCH_EXTENSIONS


def is_checkpoint_file(path):
    """Whether `path` names a weights file (by its extension)."""
    return str(path).lower().endswith(CHECKPOINT_EXTENSIONS)
