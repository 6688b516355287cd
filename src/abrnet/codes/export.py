"""ONNX export of a deployed network, checked with onnxruntime."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from ..layers import is_step


def export_onnx(model: nn.Module, x: torch.Tensor, path: Path, opset: int = 18, atol: float = 1e-4) -> dict:
    """Write ``model`` (deployed) to ``path`` and compare onnxruntime's output with
    PyTorch's on ``x``. Each step layer's output is exported as an extra graph output,
    so the check also proves the bits are identical, not only the logits.

    The model is exported and checked in eval mode on the CPU. It is moved to the CPU
    (and back, when all its tensors were on one device), and is returned to the
    training mode each of its modules came in with, with no hooks left on it.
    """
    import onnxruntime as ort

    x = x.detach().cpu()
    modes = {m: m.training for m in model.modules()}
    devices = {t.device for t in (*model.parameters(), *model.buffers())}
    steps = [n for n, m in model.named_modules() if is_step(m)]
    wrapped = _WithBits(model.cpu(), steps).eval()
    path = Path(path)
    try:
        _export(wrapped, x, path, steps, opset)
        with torch.no_grad():
            want = wrapped(x)
    finally:
        wrapped.remove_hooks()
        for m, training in modes.items():
            m.training = training
        if len(devices) == 1:
            model.to(devices.pop())
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": x.numpy()})
    logits_diff = float(np.abs(got[0] - want[0].numpy()).max())
    bits_equal = all(np.array_equal(g, w.numpy()) for g, w in zip(got[1:], want[1:], strict=True))
    binary = all(set(np.unique(g).tolist()) <= {0.0, 1.0} for g in got[1:])
    same = float((got[0].argmax(1) == want[0].numpy().argmax(1)).mean())
    return {
        "bytes": path.stat().st_size,
        "max_abs_diff": logits_diff,
        "same_argmax": same,
        "bits_equal": bits_equal and binary,
        "binary_outputs_checked": len(steps),
        "ok": bits_equal and binary and logits_diff <= atol * max(1.0, float(want[0].abs().max())),
    }


def export_run(run, path: Path, *, check_items: int = 256, opset: int = 18) -> dict:
    """:func:`export_onnx` of ``run``'s deployed network (an :class:`abrnet.Run`), checked
    on its first ``check_items`` test items; the result also holds ``items``, how many."""
    path = Path(path)
    if not path.parent.exists():
        raise UserError(f"no directory {path.parent} to write {path.name} in")
    _, test = run.datasets(limit=check_items)
    x = torch.stack([test[i][0] for i in range(min(check_items, len(test)))])
    return {**export_onnx(run.deployed, x, path, opset=opset), "items": len(x)}


def _export(wrapped: nn.Module, x: torch.Tensor, path: Path, steps: list[str], opset: int) -> None:
    """``torch.onnx.export`` to a temporary file, renamed to ``path`` when it succeeds."""
    tmp = path.with_name(f".{path.name}.tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                wrapped, (x[:2],), str(tmp), input_names=["input"],
                output_names=["logits"] + [f"bits.{n}" for n in steps],
                dynamic_axes={"input": {0: "batch"}}, opset_version=opset, dynamo=False,
            )  # fmt: skip
        except Exception as err:
            tmp.unlink(missing_ok=True)
            raise UserError(f"ONNX export failed ({str(err).splitlines()[0][:200]})") from None
    os.replace(tmp, path)


class _WithBits(nn.Module):
    """``model`` returning its logits and every step layer's output. It hooks the step
    layers of ``model`` itself: call :meth:`remove_hooks` when done."""

    def __init__(self, model: nn.Module, steps: list[str]) -> None:
        super().__init__()
        self.model, self.steps = model, steps
        self._bits: dict[str, torch.Tensor] = {}
        self._hooks = [model.get_submodule(n).register_forward_hook(self._keep(n)) for n in steps]

    def _keep(self, name: str):
        def hook(m, inputs, out) -> None:
            self._bits[name] = out

        return hook

    def remove_hooks(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks.clear()

    def forward(self, x):
        logits = self.model(x)
        return (logits, *[self._bits[n] for n in self.steps])
