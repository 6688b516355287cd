"""Checkpoints: safetensors files written atomically, never unpickled.

One file holds a whole training state: model tensors under ``model.``, optimizer
buffers under ``optim.``, RNG states under ``rng.``, and JSON metadata (config,
epoch, optimizer hyper-parameters). Loading reads tensors and JSON only, so an
untrusted file cannot run code.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import UserError

FORMAT = "abrnet-checkpoint-1"


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)``, fsync, then rename over ``path``: readers see the old
    file or the new one, never half of one. A failure (a full disk) leaves the old file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    def write(tmp: str) -> None:
        Path(tmp).write_text(text)

    atomic_write(path, write)


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"optim.{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _restore_optimizer(opt: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value
    for name, value in meta["scalars"].items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    groups = meta["param_groups"]
    if len(groups) == len(opt.param_groups) + 1 and groups[-1].get("name") == "windows":
        groups, state = _windows_into_first_group(groups, state)
    opt.load_state_dict({"state": state, "param_groups": groups})


def _windows_into_first_group(groups: list[dict], state: dict[int, dict]) -> tuple[list[dict], dict]:
    # Until 2026-12-01 the learned window widths had a last param group of their own;
    # they now close the first one (abrnet.windows.add_widths). A state saved then is
    # renumbered so that it resumes: ids follow the groups' order, so the widths' move to
    # just after the first group's and the rest shift past them.
    *rest, windows = groups
    order = rest[0]["params"] + windows["params"] + [pid for g in rest[1:] for pid in g["params"]]
    new = {old: i for i, old in enumerate(order)}
    merged = [{**g, "params": [new[p] for p in g["params"]]} for g in rest]
    merged[0]["params"] += [new[p] for p in windows["params"]]
    return merged, {new[p]: s for p, s in state.items()}


def save_checkpoint(path: Path, model: nn.Module, *, metadata: dict, optimizer=None, rng: bool = True) -> None:
    """Write model (and optionally optimizer and RNG) state to ``path`` atomically."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {"format": FORMAT, **{k: json.dumps(v) for k, v in metadata.items()}}
    if optimizer is not None:
        opt_tensors, opt_meta = _optimizer_tensors(optimizer)
        tensors.update(opt_tensors)
        meta["optimizer"] = json.dumps(opt_meta)
    if rng:
        tensors["rng.torch"] = torch.get_rng_state()
        if torch.cuda.is_available():
            for i, s in enumerate(torch.cuda.get_rng_state_all()):
                tensors[f"rng.cuda{i}"] = s
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """``(tensors, metadata)`` of an abrnet checkpoint; a one-line UserError otherwise."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no checkpoint at {path}")
    try:
        tensors = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            raw = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise UserError(f"{path} is corrupt or truncated, or not a safetensors file ({_first_line(err)})") from None
    if raw.get("format") != FORMAT:
        raise UserError(f"{path} is not an abrnet checkpoint (no '{FORMAT}' marker)")
    try:
        meta = {k: json.loads(v) for k, v in raw.items() if k != "format"}
    except json.JSONDecodeError as err:
        raise UserError(f"{path} has corrupt metadata ({err})") from None
    return tensors, meta


def load_model_state(model: nn.Module, tensors: dict[str, torch.Tensor], source: Path) -> None:
    state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise UserError(f"{source} holds weights for a different model ({_first_line(err)})") from None


def restore_training(optimizer, tensors: dict, meta: dict) -> None:
    if optimizer is not None and "optimizer" in meta:
        _restore_optimizer(optimizer, tensors, meta["optimizer"])
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"])
    if torch.cuda.is_available():
        states = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda")]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else type(err).__name__
