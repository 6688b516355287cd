"""Model surgery: ReLU -> ABR (``convert``) and ABR -> Step (``binarize``)."""

from __future__ import annotations

import copy
import fnmatch
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

import torch
from torch import fx, nn

from .layers import ABR, Step, ThresholdStep

_RELU_FUNCTIONS = {torch.relu, torch.relu_, nn.functional.relu, nn.functional.relu_}
_RELU_METHODS = {"relu", "relu_"}


class ConversionError(RuntimeError):
    """A model could not be converted; the message says what to do instead."""


def _is_relu_call(kind: str, target) -> bool:
    return (kind == "call_function" and target in _RELU_FUNCTIONS) or (
        kind == "call_method" and target in _RELU_METHODS
    )


class _CallSiteTracer(fx.Tracer):
    """Traces a model and records, for every ReLU call, which module's forward made it.

    ``calls`` holds ``(owner, relu)`` pairs: ``relu`` is the ReLU module's qualified
    name, or ``None`` for a functional ``relu`` call.
    """

    def __init__(self) -> None:
        super().__init__()
        self._owners = [""]
        self.calls: list[tuple[str, str | None]] = []

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, (ABR, Step)) or super().is_leaf_module(m, qualname)

    def call_module(self, m, forward, args, kwargs):
        path = self.path_of_module(m)
        if isinstance(m, nn.ReLU):
            self.calls.append((self._owners[-1], path))
        self._owners.append(path)
        try:
            return super().call_module(m, forward, args, kwargs)
        finally:
            self._owners.pop()

    def create_proxy(self, kind, target, *args, **kwargs):
        if _is_relu_call(kind, target):
            self.calls.append((self._owners[-1], None))
        return super().create_proxy(kind, target, *args, **kwargs)


class _ShallowTracer(fx.Tracer):
    # Every submodule is a leaf: only the owner's own forward is unrolled.
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return True


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _skipped(name: str, skip: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in skip)


def _set_module(model: nn.Module, name: str, new: nn.Module) -> nn.Module:
    """Put ``new`` at ``name`` in ``model``; returns the (possibly new) root."""
    if not name:
        return new
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent), child, new)
    return model


def _rewrite(owner: nn.Module, prefix: str, skip: Sequence[str], make) -> fx.GraphModule:
    """Re-express ``owner`` as a GraphModule with one fresh ABR per ReLU call site."""
    graph = _ShallowTracer().trace(owner)
    gm = fx.GraphModule(owner, graph, class_name=type(owner).__name__)
    # Find every call site before replacing any: the first replacement takes the
    # shared ReLU's name, and later calls to it must still be found.
    sites = [
        (node, node.target if node.op == "call_module" else node.name)
        for node in gm.graph.nodes
        if (node.op == "call_module" and isinstance(gm.get_submodule(node.target), nn.ReLU))
        or _is_relu_call(node.op, node.target)
    ]
    used: set[str] = set()
    for node, base in sites:
        if _skipped(_join(prefix, base), skip):
            continue
        # First call keeps the ReLU's own name; later calls get _1, _2, ...
        name, k = base, 0
        while name in used or (name != base and _has(gm, name)):
            k += 1
            name = f"{base}_{k}"
        used.add(name)
        gm.add_submodule(name, make())
        node.op, node.target = "call_module", name
        node.args, node.kwargs = node.args[:1], {}
    gm.graph.lint()
    gm.recompile()
    gm.delete_all_unused_submodules()
    return gm


def _has(gm: nn.Module, name: str) -> bool:
    try:
        gm.get_submodule(name)
    except AttributeError:
        return False
    return True


def convert(
    model: nn.Module,
    *,
    skip: Iterable[str] = (),
    inplace: bool = False,
    trace: bool = True,
    example_input: torch.Tensor | None = None,
    factory: Callable[[], nn.Module] | None = None,
    **abr_kwargs,
) -> nn.Module:
    """Replace every ReLU in ``model`` with an :class:`ABR`.

    Each ReLU *call site* gets its own ABR, with its own slopes: torchvision's ResNet
    blocks call one ``nn.ReLU`` twice, and functional ``F.relu`` calls have no module
    at all. The module that makes such calls is re-expressed with ``torch.fx`` (a
    ``GraphModule`` that keeps the parameter names); everything else keeps its class.

    Args:
        skip: glob patterns of ReLU names to leave alone (module names such as
            ``"features.1"``; a functional call is named after its fx node, such as
            ``"block.relu_1"``).
        inplace: modify ``model`` instead of a deep copy.
        trace: set False for models torch.fx cannot trace: each ``nn.ReLU`` module is
            then swapped one-for-one, which is right only if none is called twice.
        example_input: a batch to run once (in eval mode), so the lazy ABR slopes take
            their shape before an optimizer is built.
        factory: builds the module for each call site instead of an ABR (a rival
            activation, or a placeholder); ``abr_kwargs`` are then unused.
        **abr_kwargs: passed to every :class:`ABR` (``init_slope``, ``channel_dim``...).
    """
    skip = tuple(skip)
    if not inplace:
        model = copy.deepcopy(model)

    def make() -> nn.Module:
        return factory() if factory is not None else ABR(**abr_kwargs)

    if trace:
        tracer = _CallSiteTracer()
        try:
            tracer.trace(model)
        except Exception as err:  # fx raises many types; all mean "not traceable"
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ConversionError(
                f"torch.fx cannot trace {type(model).__name__} ({reason}); convert its traceable "
                "submodules one by one (abrnet.convert(model.features, inplace=True)), or pass "
                "trace=False to swap each nn.ReLU module for an ABR (right only if no ReLU "
                "module is called twice)"
            ) from None
        counts = Counter(relu for _, relu in tracer.calls if relu is not None)
        owners = {owner for owner, relu in tracer.calls if relu is None or counts[relu] > 1}
        # Deepest first, so a parent is rewritten around already-rewritten children.
        for owner in sorted(owners, key=lambda n: n.count(".") if n else -1, reverse=True):
            new = _rewrite(model.get_submodule(owner), owner, skip, make)
            model = _set_module(model, owner, new)
        names = [relu for relu, n in counts.items() if n == 1]
    else:
        names = [n for n, m in model.named_modules() if isinstance(m, nn.ReLU)]
    for name in names:
        if isinstance(model.get_submodule(name), nn.ReLU) and not _skipped(name, skip):
            model = _set_module(model, name, make())
    if example_input is not None:
        was_training = model.training
        with torch.no_grad():
            model.eval()(example_input)
        model.train(was_training)
    return model


def is_binarizable(m: nn.Module) -> bool:
    """An ABR, or any activation (such as a rival method's) that knows its deploy form."""
    return isinstance(m, ABR) or callable(getattr(m, "to_step", None))


def deploy_form(m: nn.Module) -> nn.Module:
    """What ``binarize`` puts in place of activation ``m``: ``Step`` for an ABR, a rival's
    own threshold (its ``to_step()``) otherwise."""
    return m.to_step() if hasattr(m, "to_step") else Step()


def freeze(model: nn.Module, layers: Sequence[str]) -> list:
    """Make the named activations of ``model`` compute their deploy form, in place.

    Unlike :func:`binarize`, the model keeps its modules and parameters (so its
    state dict, optimizer and checkpoints are unchanged): a forward hook replaces each
    layer's output by its step applied to the same input. No gradient crosses a
    frozen step, so training then updates only what lies after it. Returns the hook
    handles; ``handle.remove()`` unfreezes.
    """
    handles = []
    for name in layers:
        m = model.get_submodule(name)
        step = deploy_form(m)

        def hook(module, inputs, out, step=step):
            return step.to(inputs[0].device)(inputs[0])

        handles.append(m.register_forward_hook(hook))
    return handles


def binary_layers(model: nn.Module) -> list[str]:
    """Names of the activations that ``binarize`` can turn into steps, in order."""
    return [n for n, m in model.named_modules() if is_binarizable(m)]


def binarize(model: nn.Module, layers: str | Sequence[str] = "all", *, fold_bn: bool = False) -> nn.Module:
    """A deployable copy of ``model`` in which the chosen ABRs are replaced by ``Step``.

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
        out = _set_module(out, name, deploy_form(m))
    if fold_bn:
        _fold_batchnorm(out)
    return out


def _foldable(bn: nn.Module, step: nn.Module) -> bool:
    return isinstance(bn, nn.modules.batchnorm._BatchNorm) and type(step) is Step and bn.track_running_stats


def _fold_batchnorm(model: nn.Module) -> None:
    # nn.Sequential: a BatchNorm child right before a Step child.
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        keys = list(seq._modules)
        for a, b in zip(keys, keys[1:]):
            if _foldable(seq._modules[a], seq._modules[b]):
                seq._modules[b] = ThresholdStep.from_batchnorm(seq._modules[a])
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
                _set_module(gm, node.target, ThresholdStep.from_batchnorm(bn))
                node.args = (src.args[0],)
                gm.graph.erase_node(src)
                changed = True
        if changed:
            gm.graph.lint()
            gm.recompile()
            gm.delete_all_unused_submodules()
