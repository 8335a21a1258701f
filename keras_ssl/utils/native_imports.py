"""Loads triton's native library so that it cannot crash next to TensorFlow.

`import torchvision` or `import timm` after TensorFlow reaches
`torch._dynamo`, which imports triton. Triton's `libtriton.so` carries its
own LLVM; loaded after TensorFlow's, its symbols bind to TensorFlow's LLVM
and the process dies with a segmentation fault (torch 2.14.1, triton 3.8,
TensorFlow 2.21). Loading it with `RTLD_DEEPBIND` makes it resolve its own
symbols first, which is how it runs when imported before TensorFlow.

The hook only changes how that one library is opened, and only if
something imports it; `import keras_ssl` does not import triton.
"""

import importlib.abc
import os
import sys

TRITON_NATIVE_MODULE = "triton._C.libtriton"


class _DeepBindLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        flags = sys.getdlopenflags()
        sys.setdlopenflags(flags | os.RTLD_DEEPBIND)
        try:
            return self._loader.create_module(spec)
        finally:
            sys.setdlopenflags(flags)

    def exec_module(self, module):
        self._loader.exec_module(module)


class _DeepBindFinder(importlib.abc.MetaPathFinder):
    """Finds `triton._C.libtriton` as usual and opens it with DEEPBIND."""

    def find_spec(self, fullname, path, target=None):
        if fullname != TRITON_NATIVE_MODULE:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                spec.loader = _DeepBindLoader(spec.loader)
                return spec
        return None


def guard_triton_import():
    """Installs the finder once; a no-op where DEEPBIND does not exist."""
    if not hasattr(os, "RTLD_DEEPBIND") or TRITON_NATIVE_MODULE in sys.modules:
        return
    if not any(isinstance(finder, _DeepBindFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _DeepBindFinder())
