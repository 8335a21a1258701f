"""Importing the PyTorch stack next to keras_ssl does not crash."""

import ast
import os
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


def _module_imports():
    """`{module: modules it imports}` for keras_ssl, function-level included.

    Importing `a.b.c` also runs the `__init__` of `a` and `a.b`, so those
    count as imported too, except packages the importer is itself inside
    (they are already running) and the root package.
    """
    root = os.path.join(os.path.dirname(os.path.dirname(__file__)), "keras_ssl")
    paths = {}
    for folder, _, files in os.walk(root):
        for file in files:
            if file.endswith(".py"):
                path = os.path.join(folder, file)
                name = os.path.relpath(path, os.path.dirname(root))[:-3]
                name = name.replace(os.sep, ".").removesuffix(".__init__")
                paths[name] = path

    def parents(name):
        parts = name.split(".")
        return {".".join(parts[:i]) for i in range(2, len(parts))}

    graph = {}
    for name, path in paths.items():
        is_package = path.endswith("__init__.py")
        targets = set()
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                assert node.level == 0, f"{name}: use absolute imports"
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    targets.add(full if full in paths else node.module)
        own = parents(name) | ({name} if is_package else set())
        graph[name] = {
            module
            for target in targets
            if target in paths
            for module in parents(target) | {target}
            if module in paths and module not in own
        }
    return graph


def test_no_import_cycles_between_keras_ssl_modules():
    graph = _module_imports()
    assert graph["keras_ssl.models.converters.checkpoint_converter"] >= {
        "keras_ssl.hub", "keras_ssl.hub.resolve"
    }  # the walk sees imports
    cycles = []

    def reachable(start):
        seen, stack = set(), [start]
        while stack:
            for module in graph[stack.pop()]:
                if module not in seen:
                    seen.add(module)
                    stack.append(module)
        return seen

    for module in graph:
        if module in reachable(module):
            cycles.append(module)
    assert not cycles, f"modules that import themselves back: {sorted(cycles)}"
