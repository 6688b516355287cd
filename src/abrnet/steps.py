"""ABR -> Step: the deploy form of a trained model (``binarize``), or of some of its
layers while it trains on (``freeze``)."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import fx, nn

from .layers import ABR, Step, ThresholdStep


def set_module(model: nn.Module, name: str, new: nn.Module) -> nn.Module:
    """Put ``new`` at ``name`` in ``model``; returns the (possibly new) root."""
    if not name:
        return new
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent), child, new)
    return model


def is_binarizable(m: nn.Module) -> bool:
    """An ABR, or any activation (such as a rival method's) that knows its deploy form."""
    return isinstance(m, ABR) or callable(getattr(m, "to_step", None))


def deploy_form(m: nn.Module) -> nn.Module:
    """What ``binarize`` puts in place of activation ``m``: ``Step`` for an ABR, a rival's
    own threshold (its ``to_step()``) otherwise."""
    return m.to_step() if hasattr(m, "to_step") else Step()


class _StraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx, value, surrogate):
        return value

    @staticmethod
    def backward(ctx, grad):
        return None, grad


def pass_through(value: torch.Tensor, surrogate: torch.Tensor) -> torch.Tensor:
    """``value`` forward, ``surrogate``'s gradient backward: exact outputs (a step's
    0/1) that still pass a gradient (the activation's own, or a wider one)."""
    return _StraightThrough.apply(value, surrogate)


def freeze(model: nn.Module, layers: Sequence[str], *, straight_through: bool = False) -> list:
    """Make the named activations of ``model`` compute their deploy form, in place.

    Unlike :func:`binarize`, the model keeps its modules and parameters (so its
    state dict, optimizer and checkpoints are unchanged): a forward hook replaces each
    layer's output by its step applied to the same input. By default no gradient
    crosses a frozen step, so training then updates only what lies after it; with
    ``straight_through`` the gradient is the activation's own (an ABR's ``w`` inside its
    window), so what lies before it keeps learning against the exact 0/1 forward.
    Returns the hook handles; ``handle.remove()`` unfreezes.
    """
    handles = []
    for name in layers:
        m = model.get_submodule(name)
        step = deploy_form(m)

        def hook(module, inputs, out, step=step):
            value = step.to(inputs[0].device)(inputs[0])
            if straight_through and torch.is_grad_enabled() and out.requires_grad:
                return pass_through(value, out)
            return value

        handles.append(m.register_forward_hook(hook))
    return handles


def binary_layers(model: nn.Module) -> list[str]:
    """Names of the activations that ``binarize`` can turn into steps, in order."""
    return [n for n, m in model.named_modules() if is_binarizable(m)]


def upstream_params(model: nn.Module, names: Sequence[str]) -> list[nn.Parameter]:
    """Parameters of the modules registered before the last binary layer, slopes
    excluded: the ones whose gradient crosses an ABR. (Module order is the forward order
    in sequential nets and in torchvision's; the classifier after the last one is out.)"""
    if not names:
        return []
    last = names[-1]
    seen: list[nn.Parameter] = []
    ids: set[int] = set()
    for name, module in model.named_modules():
        if name == last:
            break
        if isinstance(module, ABR):
            continue
        for p in module.parameters(recurse=False):
            if id(p) not in ids and p.requires_grad:
                ids.add(id(p))
                seen.append(p)
    return seen


def binarize(model: nn.Module, layers: str | Sequence[str] = "all", *, fold_bn: bool = False) -> nn.Module:
    """A deployable copy of ``model`` in which the chosen ABRs are replaced by their steps:
    ``Step``, or a ``ThresholdStep`` at a rounded ABR's threshold.

    Args:
        layers: ``"all"``; ``"last"``, the representation that feeds the final
            classifier (the last ABR in registration order, which is call order for
            abrnet's models and converted ones); or a list of ABR names.
        fold_bn: where a BatchNorm feeds a chosen step inside an ``nn.Sequential``,
            fold the pair into one per-channel threshold (:class:`ThresholdStep`).

    The copy is returned in eval mode; every chosen representation is exactly 0/1.
    """
    names = binary_layers(model)
    if not names:
        raise ValueError("model has no ABR layers to binarize: convert it with abrnet.convert first")
    if layers == "all":
        chosen = names
    elif layers == "last":
        chosen = names[-1:]
    elif isinstance(layers, str):
        raise ValueError(f"layers must be 'all', 'last' or a list of names, got {layers!r}")
    else:
        chosen = list(layers)
        unknown = [n for n in chosen if n not in names]
        if unknown:
            raise ValueError(f"not ABR layers: {', '.join(unknown)}; choose from {', '.join(names)}")
    out = copy.deepcopy(model).eval()
    for name in chosen:
        m = out.get_submodule(name)
        out = set_module(out, name, deploy_form(m))
    if fold_bn:
        _fold_batchnorm(out)
    return out


def fires_above(step: nn.Module) -> float | None:
    """``t`` where ``step`` is ``[x > t]`` with one ``t`` for the whole layer: 0 for a
    :class:`Step`, a rounded ABR's or PACT's threshold; None for per-channel thresholds
    (a folded BatchNorm) or any other module."""
    if type(step) is Step:
        return 0.0
    if type(step) is ThresholdStep and step.threshold.numel() == 1 and bool((step.sign == 1).all()):
        return step.threshold.item()
    return None


def _foldable(bn: nn.Module, step: nn.Module) -> bool:
    if not (isinstance(bn, nn.modules.batchnorm._BatchNorm) and bn.track_running_stats):
        return False
    return fires_above(step) is not None  # [x > 0], or a rounded ABR's [x > t]


def _level(step: nn.Module) -> torch.Tensor | float:
    return step.threshold.reshape(()) if isinstance(step, ThresholdStep) else 0.0


def _fold_batchnorm(model: nn.Module) -> None:
    # nn.Sequential: a BatchNorm child right before a Step child.
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        keys = list(seq._modules)
        for a, b in zip(keys, keys[1:]):
            if _foldable(seq._modules[a], seq._modules[b]):
                seq._modules[b] = ThresholdStep.from_batchnorm(seq._modules[a], _level(seq._modules[b]))
                seq._modules[a] = nn.Identity()
    # fx GraphModules (from convert): a BatchNorm node whose only user is a Step node.
    for gm in [m for m in model.modules() if isinstance(m, fx.GraphModule)]:
        changed = False
        for node in list(gm.graph.nodes):
            if node.op != "call_module" or not node.args or not isinstance(node.args[0], fx.Node):
                continue
            src = node.args[0]
            if src.op != "call_module" or len(src.users) != 1:
                continue
            bn, step = gm.get_submodule(src.target), gm.get_submodule(node.target)
            if _foldable(bn, step):
                set_module(gm, node.target, ThresholdStep.from_batchnorm(bn, _level(step)))
                node.args = (src.args[0],)
                gm.graph.erase_node(src)
                changed = True
        if changed:
            gm.graph.lint()
            gm.recompile()
            gm.delete_all_unused_submodules()
