"""ONNX export of a deployed network, checked with onnxruntime."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import UserError


def export_onnx(model: nn.Module, x: torch.Tensor, path: Path, opset: int = 18, atol: float = 1e-4) -> dict:
    """Write ``model`` (deployed, eval mode) to ``path`` and compare onnxruntime's output
    with PyTorch's on ``x``. Each step layer's output is exported as an extra graph
    output, so the check also proves the bits are identical, not only the logits."""
    import onnxruntime as ort

    model = model.cpu().eval()
    steps = [n for n, m in model.named_modules() if getattr(m, "precision", None) == 1]
    wrapped = _WithBits(model, steps)
    path = Path(path)
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
    with torch.no_grad():
        want = wrapped(x)
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


class _WithBits(nn.Module):
    def __init__(self, model: nn.Module, steps: list[str]) -> None:
        super().__init__()
        self.model, self.steps = model, steps
        self._bits: dict[str, torch.Tensor] = {}
        for n in steps:
            model.get_submodule(n).register_forward_hook(self._keep(n))

    def _keep(self, name: str):
        def hook(m, inputs, out) -> None:
            self._bits[name] = out

        return hook

    def forward(self, x):
        logits = self.model(x)
        return (logits, *[self._bits[n] for n in self.steps])
