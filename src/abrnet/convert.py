"""Model surgery: activation -> ABR (``convert``). The way back, ABR -> Step, is in
:mod:`abrnet.steps`."""

from __future__ import annotations

import copy
import fnmatch
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import fx, nn

from .layers import ABR, Step
from .steps import set_module

# The activations convert knows without a module, per module class: the functions and
# Tensor methods that compute them, as torch.fx records them.
FUNCTIONAL: dict[type[nn.Module], tuple[set, set]] = {
    nn.ReLU: ({torch.relu, torch.relu_, F.relu, F.relu_}, {"relu", "relu_"}),
    nn.ReLU6: ({F.relu6}, set()),
    nn.LeakyReLU: ({F.leaky_relu, F.leaky_relu_}, set()),
    nn.Hardtanh: ({F.hardtanh, F.hardtanh_}, set()),
    nn.ELU: ({F.elu, F.elu_}, set()),
    nn.GELU: ({F.gelu}, set()),
    nn.SiLU: ({F.silu}, set()),
    nn.Hardswish: ({F.hardswish}, set()),
    nn.Mish: ({F.mish}, set()),
}
# The default: the two rectifiers, whose positive half an ABR reproduces (docs/method.md).
RECTIFIERS: tuple[type[nn.Module], ...] = (nn.ReLU, nn.ReLU6)


class ConversionError(RuntimeError):
    """A model could not be converted; the message says what to do instead."""


class _Match:
    """Which modules, functions and Tensor methods count as activations to replace."""

    def __init__(self, kinds: Iterable[type[nn.Module]]) -> None:
        self.kinds = tuple(kinds)
        bad = [k for k in self.kinds if not (isinstance(k, type) and issubclass(k, nn.Module))]
        if not self.kinds or bad:
            raise TypeError(f"activations must be nn.Module classes such as nn.ReLU, got {bad or 'nothing'}")
        self.functions = {f for k in self.kinds for f in FUNCTIONAL.get(k, ((), ()))[0]}
        self.methods = {f for k in self.kinds for f in FUNCTIONAL.get(k, ((), ()))[1]}

    def module(self, m: nn.Module) -> bool:
        return isinstance(m, self.kinds) and not isinstance(m, (ABR, Step))

    def call(self, kind: str, target) -> bool:
        return (kind == "call_function" and target in self.functions) or (
            kind == "call_method" and target in self.methods
        )


class _CallSiteTracer(fx.Tracer):
    """Traces a model and records, for every activation call, which module's forward
    made it: ``calls`` holds ``(owner, name)`` pairs, ``name`` being the activation
    module's qualified name or ``None`` for a functional call."""

    def __init__(self, match: _Match) -> None:
        super().__init__()
        self.match, self._owners = match, [""]
        self.calls: list[tuple[str, str | None]] = []

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        # A user's own activation class is a leaf too: its inner calls are not sites.
        return isinstance(m, (ABR, Step)) or self.match.module(m) or super().is_leaf_module(m, qualname)

    def call_module(self, m, forward, args, kwargs):
        path = self.path_of_module(m)
        if self.match.module(m):
            self.calls.append((self._owners[-1], path))
        self._owners.append(path)
        try:
            return super().call_module(m, forward, args, kwargs)
        finally:
            self._owners.pop()

    def create_proxy(self, kind, target, *args, **kwargs):
        if self.match.call(kind, target):
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


def _has(gm: nn.Module, name: str) -> bool:
    try:
        gm.get_submodule(name)
    except AttributeError:
        return False
    return True


class _Converter:
    """One conversion: the options, and what it has replaced so far."""

    def __init__(self, match: _Match, skip: Sequence[str], make: Callable[[], nn.Module]) -> None:
        self.match, self.skip, self.make = match, skip, make
        self.sites = 0  # activation call sites found (skipped or not)
        self.untraced: list[str] = []  # modules swapped inside code fx could not trace

    def traced(self, model: nn.Module, prefix: str) -> nn.Module:
        """Convert ``model`` (named ``prefix`` in the root) by tracing it whole; raises
        whatever torch.fx raises when it cannot."""
        tracer = _CallSiteTracer(self.match)
        tracer.trace(model)
        self.sites += len(tracer.calls)
        counts = Counter(name for _, name in tracer.calls if name is not None)
        owners = {owner for owner, name in tracer.calls if name is None or counts[name] > 1}
        # Deepest first, so a parent is rewritten around already-rewritten children.
        for owner in sorted(owners, key=lambda n: n.count(".") if n else -1, reverse=True):
            model = set_module(model, owner, self._rewrite(model.get_submodule(owner), _join(prefix, owner)))
        for name in [n for n, k in counts.items() if k == 1]:
            if self.match.module(model.get_submodule(name)) and not _skipped(_join(prefix, name), self.skip):
                model = set_module(model, name, self.make())
        return model

    def parts(self, model: nn.Module, prefix: str) -> nn.Module:
        """``model`` cannot be traced: convert each child that can, recursively; swap an
        activation module owned by untraceable code one-for-one (checked by _guard)."""
        for name, child in list(model.named_children()):
            full = _join(prefix, name)
            if self.match.module(child):
                self.sites += 1
                if not _skipped(full, self.skip):
                    setattr(model, name, self.make())
                    self.untraced.append(full)
            else:
                try:
                    setattr(model, name, self.traced(child, full))
                except Exception:  # fx raises many types; all mean "not traceable"
                    self.parts(child, full)
        return model

    def _rewrite(self, owner: nn.Module, prefix: str) -> fx.GraphModule:
        """Re-express ``owner`` as a GraphModule with one fresh module per call site."""
        graph = _ShallowTracer().trace(owner)
        gm = fx.GraphModule(owner, graph, class_name=type(owner).__name__)
        # Find every call site before replacing any: the first replacement takes the
        # shared module's name, and later calls to it must still be found.
        sites = [
            (node, node.target if node.op == "call_module" else node.name)
            for node in gm.graph.nodes
            if (node.op == "call_module" and self.match.module(gm.get_submodule(node.target)))
            or self.match.call(node.op, node.target)
        ]
        used: set[str] = set()
        for node, base in sites:
            if _skipped(_join(prefix, base), self.skip):
                continue
            # First call keeps the activation's own name; later calls get _1, _2, ...
            name, k = base, 0
            while name in used or (name != base and _has(gm, name)):
                k += 1
                name = f"{base}_{k}"
            used.add(name)
            gm.add_submodule(name, self.make())
            x = node.args[0] if node.args else node.kwargs.get("input")
            node.op, node.target, node.args, node.kwargs = "call_module", name, (x,), {}
        gm.graph.lint()
        gm.recompile()
        gm.delete_all_unused_submodules()
        return gm


def _guard(model: nn.Module, names: Sequence[str]) -> None:
    """Check, on the first forward pass, that each module swapped inside untraceable
    code runs once: a module called twice would share one set of slopes between two
    call sites. The hooks remove themselves after that pass."""
    counts: Counter = Counter()
    handles: list = []

    def check(module, args, out):
        for h in handles:
            h.remove()
        twice = {n: k for n, k in counts.items() if k > 1}
        if twice:
            name, k = next(iter(twice.items()))
            raise ConversionError(
                f"activation {name!r} of {type(model).__name__} is called {k} times in one forward pass, "
                "inside code torch.fx cannot trace, so its call sites cannot get one ABR each; give each "
                "call its own activation module, or make that code traceable"
            )

    for n in names:
        handles.append(model.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: counts.update([n])))
    handles.append(model.register_forward_hook(check))


def _found_activations(model: nn.Module) -> str:
    found = Counter(
        type(m).__name__
        for m in model.modules()
        if type(m).__module__ == nn.modules.activation.__name__ or isinstance(m, tuple(FUNCTIONAL))
    )
    return ", ".join(f"{name} ({k})" for name, k in found.most_common())


def convert(
    model: nn.Module,
    *,
    activations: Iterable[type[nn.Module]] = RECTIFIERS,
    skip: Iterable[str] = (),
    inplace: bool = False,
    trace: bool = True,
    example_input: torch.Tensor | None = None,
    factory: Callable[[], nn.Module] | None = None,
    **abr_kwargs,
) -> nn.Module:
    """Replace every ReLU and ReLU6 in ``model`` (or the ``activations`` chosen) with an
    :class:`ABR`.

    Each *call site* gets its own ABR, with its own slopes: torchvision's ResNet
    blocks call one ``nn.ReLU`` twice, and functional ``F.relu`` calls have no module
    at all. The module that makes such calls is re-expressed with ``torch.fx`` (a
    ``GraphModule`` that keeps the parameter names); everything else keeps its class.
    When torch.fx cannot trace the whole model (data-dependent control flow), each
    traceable submodule is converted on its own, and an activation module called from
    untraceable code is swapped in place; the first forward pass checks that it is
    called once, and raises :class:`ConversionError` naming it otherwise.

    Args:
        activations: module classes to replace (instances of subclasses too), with the
            functional forms of those in ``FUNCTIONAL``. Default ``(nn.ReLU, nn.ReLU6)``;
            ``nn.LeakyReLU``, ``nn.Hardtanh``, ``nn.GELU``... on request (docs/method.md
            says what converting a non-ReLU means).
        skip: glob patterns of activation names to leave alone (module names such as
            ``"features.1"``; a functional call is named after its fx node, such as
            ``"block.relu_1"``).
        inplace: modify ``model`` instead of a deep copy.
        trace: set False to skip torch.fx: each activation module is swapped
            one-for-one (checked on the first forward pass to be called once).
        example_input: a batch to run once (in eval mode), so the lazy ABR slopes take
            their shape (and call counts are checked) before an optimizer is built.
        factory: builds the module for each call site instead of an ABR (a rival
            activation, or a placeholder); ``abr_kwargs`` are then unused.
        **abr_kwargs: passed to every :class:`ABR` (``init_slope``, ``channel_dim``...).

    Raises :class:`ConversionError` when the model has none of the chosen activations.
    """
    match, skip = _Match(activations), tuple(skip)
    if not inplace:
        model = copy.deepcopy(model)
    conv = _Converter(match, skip, factory if factory is not None else lambda: ABR(**abr_kwargs))
    if trace:
        try:
            model = conv.traced(model, "")
        except ConversionError:
            raise
        except Exception:  # fx raises many types; all mean "not traceable"
            model = conv.parts(model, "")
    else:
        conv.untraced = [n for n, m in model.named_modules() if match.module(m) and not _skipped(n, skip)]
        conv.sites = len(conv.untraced)
        for name in conv.untraced:
            model = set_module(model, name, conv.make())
    if conv.sites == 0:
        kinds = ", ".join(k.__name__ for k in match.kinds)
        found = _found_activations(model)
        done = " (it is already converted)" if any(isinstance(m, ABR) for m in model.modules()) else ""
        raise ConversionError(
            f"nothing to convert in {type(model).__name__}{done}: no {kinds} found; "
            + (f"it uses {found}: pass the ones to replace as activations=(...)" if found else
               "pass its activation classes as activations=(...)")
        )  # fmt: skip
    if conv.untraced:
        _guard(model, conv.untraced)
    if example_input is not None:
        was_training = model.training
        with torch.no_grad():
            model.eval()(example_input)
        model.train(was_training)
    return model
