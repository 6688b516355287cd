"""The core stays light, and imports go one way (core <- everything else)."""

import ast
import pathlib
import subprocess
import sys

CORE = ["__init__.py", "functional.py", "layers.py", "penalty.py", "convert.py", "stats.py"]
SRC = pathlib.Path(__file__).resolve().parents[1] / "src" / "abrnet"


def test_import_abrnet_loads_no_heavy_extras():
    code = (
        "import sys, abrnet\n"
        "heavy = [m for m in ('torchvision', 'matplotlib', 'faiss', 'onnx', 'onnxruntime', 'safetensors',"
        " 'sklearn', 'tensorboard') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_core_imports_nothing_from_the_rest_of_the_package():
    for name in CORE:
        tree = ast.parse((SRC / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                modules = [node.module] if node.module else [a.name for a in node.names]
                for mod in modules:
                    assert mod.split(".")[0] + ".py" in CORE, f"{name} imports .{mod}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert alias.name.split(".")[0] in {
                        "torch",
                        "numpy",
                        "math",
                        "copy",
                        "fnmatch",
                        "collections",
                        "dataclasses",
                        "__future__",
                    }, f"{name}: {alias.name}"
