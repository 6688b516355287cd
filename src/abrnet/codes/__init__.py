"""Using a deployed network's exact 0/1 representations: packed codes, Hamming search,
retrieval quality, multiplication-free Linear layers and ONNX export.

* :mod:`.packing`: ``pack``/``unpack`` at 1 bit per unit, ``save_codes``/``load_codes``,
  ``extract_codes`` (a step layer's output over a data loader);
* :mod:`.search`: ``HammingIndex`` (faiss) and the float baseline ``float_search``;
* :mod:`.retrieval`: tie-aware mAP, mAP@k and P@k (``evaluate_retrieval``,
  ``evaluate_float_retrieval``);
* :mod:`.deploy`: ``BinaryInputLinear`` and ``pack_linears``;
* :mod:`.export`: ``export_onnx`` (checked with onnxruntime) and ``export_run``;
* :mod:`.encode`, :mod:`.query`, :mod:`.protocol`: what ``abrnet codes``, ``abrnet
  search`` and ``abrnet retrieval`` do, on a run: ``write_codes``, ``query_index``,
  ``run_retrieval``.

The names are served lazily: ``import abrnet.codes`` loads none of these modules, and
faiss and onnxruntime load only with the modules or functions that use them.
"""

from __future__ import annotations

import importlib

_NAMES = {
    "packing": ("Codes", "as_numpy", "default_layer", "extract_codes", "load_codes", "pack", "packed_bytes",
                "save_codes", "step_layers", "unpack"),
    "search": ("HammingIndex", "float_search"),
    "retrieval": ("evaluate_float_retrieval", "evaluate_retrieval", "mean_average_precision", "precision_at_k"),
    "deploy": ("BinaryInputLinear", "pack_linears", "unpack_bits"),
    "export": ("export_onnx", "export_run"),
    "encode": ("write_codes",),
    "query": ("query_index",),
    "protocol": ("measure_speed", "run_retrieval"),
}  # fmt: skip
_WHERE = {name: module for module, names in _NAMES.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
