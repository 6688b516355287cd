"""``abrnet.codes``: its public names, served lazily so that importing it stays cheap."""

import subprocess
import sys

import abrnet.codes


def test_import_loads_no_heavy_extras_and_no_submodule():
    code = (
        "import sys, abrnet.codes\n"
        "print(','.join(m for m in sys.modules if m in ('faiss', 'onnxruntime', 'onnx')"
        " or m.startswith('abrnet.codes.') or m.startswith('abrnet.train')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_every_public_name_resolves():
    assert {"HammingIndex", "pack", "unpack", "extract_codes", "export_onnx", "BinaryInputLinear",
            "evaluate_retrieval", "run_retrieval", "query_index", "write_codes"} <= set(abrnet.codes.__all__)  # fmt: skip
    for name in abrnet.codes.__all__:
        obj = getattr(abrnet.codes, name)
        assert obj.__module__.startswith("abrnet.codes."), name
    from abrnet.codes import HammingIndex
    from abrnet.codes.search import HammingIndex as direct

    assert HammingIndex is direct
    assert set(abrnet.codes.__all__) <= set(dir(abrnet.codes))
