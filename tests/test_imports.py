"""The layers of the package, guarded: the core stays light and imports only itself;
the application packages never import the command line; imports go one way."""

import ast
import pathlib
import subprocess
import sys

import pytest

SRC = pathlib.Path(__file__).resolve().parents[1] / "src" / "abrnet"
# The core: flat modules at abrnet.*. Everything else is an application package.
CORE = {
    "functional",
    "layers",
    "penalty",
    "convert",
    "steps",
    "stats",
    "errors",
    "rivals",
    "hashnet",
    "schedule",
    "windows",
}
APPS = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
THIRD_PARTY_IN_CORE = {"torch", "numpy"}


def _imports(path: pathlib.Path):
    """``(absolute dotted module, node, inside a function)`` for every import of ``path``,
    both ``import x`` and ``from x import y`` forms, relative ones resolved."""
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    package = parts if path.name == "__init__.py" else parts[:-1]
    if path.name == "__init__.py":
        package = parts[:-1]
    tree = ast.parse(path.read_text())
    in_function = set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            in_function.update(id(n) for n in ast.walk(fn))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node, id(node) in in_function
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module
            names = [mod] if node.module or not node.level else [f"{mod}.{a.name}" for a in node.names]
            for name in names:
                yield name, node, id(node) in in_function


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "abrnet":
        return None
    return parts[1] if len(parts) > 1 else "abrnet"


def test_resolves_both_import_forms(tmp_path):
    # The guard itself: "from . import x" and "from ..train import y" are seen.
    found = {m for m, _, _ in _imports(SRC / "cli" / "train.py")}
    assert any(m.startswith("abrnet.train") for m in found)
    found = {m for m, _, _ in _imports(SRC / "stats.py")}
    assert "abrnet.functional" in found and "abrnet.steps" in found


@pytest.mark.parametrize("name", sorted(CORE))
def test_core_imports_only_the_core_torch_and_the_standard_library(name):
    for module, node, _ in _imports(SRC / f"{name}.py"):
        layer = _layer(module)
        if layer is not None:
            assert layer in CORE, f"{name}.py line {node.lineno} imports {module}"
        else:
            top = module.split(".")[0]
            assert top in THIRD_PARTY_IN_CORE or top in sys.stdlib_module_names, f"{name}.py imports {module}"


def test_package_init_reaches_applications_only_lazily():
    # abrnet.load_run is served by a module-level __getattr__ (PEP 562), so that
    # `import abrnet` loads no application code.
    for module, node, lazy in _imports(SRC / "__init__.py"):
        layer = _layer(module)
        if layer is not None and layer not in CORE:
            assert lazy, f"__init__.py line {node.lineno} imports {module} eagerly"


# __main__.py (``python -m abrnet``) is the command line's entry point, not library code.
LIBRARY = sorted(p for p in SRC.rglob("*.py") if p.relative_to(SRC).parts[0] not in ("cli", "__main__.py"))


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(SRC)))
def test_library_never_imports_the_command_line(path):
    for module, node, _ in _imports(path):
        assert _layer(module) != "cli", f"{path.relative_to(SRC)} line {node.lineno} imports {module}"


def test_train_imports_no_other_application():
    # train/ is what codes/, analysis/ and compare/ build on, never the other way round.
    for path in (SRC / "train").rglob("*.py"):
        for module, node, _ in _imports(path):
            layer = _layer(module)
            assert layer in CORE | {None, "train", "abrnet"}, f"{path.relative_to(SRC)}:{node.lineno} imports {module}"


def test_import_abrnet_loads_no_heavy_extras():
    code = (
        "import sys, abrnet\n"
        "heavy = [m for m in ('torchvision', 'matplotlib', 'faiss', 'onnx', 'onnxruntime', 'safetensors',"
        " 'sklearn', 'tensorboard') if m in sys.modules]\n"
        "apps = [m for m in sys.modules if m.split('.')[:2] != ['abrnet'] and m.startswith('abrnet.')"
        " and m.split('.')[1] not in " + repr(sorted(CORE)) + "]\n"
        "print(','.join(heavy + apps))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_load_run_is_public_and_lazy():
    code = "import sys, abrnet; assert 'abrnet.train' not in sys.modules; f = abrnet.load_run; print(f.__module__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "abrnet.train.run"
