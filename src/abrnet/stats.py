"""Diagnostics: how binary each layer is, and how much activation memory it needs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from . import functional as F
from .layers import ABR, is_step
from .steps import deploy_form, fires_above, is_binarizable


@dataclass
class LayerStats:
    """Binarization state of one activation layer over some data.

    Shares are fractions of all outputs seen: ``zero`` exactly 0, ``one`` exactly 1,
    ``between`` strictly inside (0, 1); ``changed`` would differ if the layer were
    replaced by its step. Slope fields are None for layers without slopes. ``threshold``:
    the deployed step fires at ``x > threshold`` (None where it has one per channel);
    ``frozen``: an ABR that computes that step already (the adaptive schedule froze it),
    so its slope takes no part.
    """

    slope_min: float | None
    slope_mean: float | None
    slope_max: float | None
    zero: float
    one: float
    between: float
    changed: float
    numel: int
    threshold: float | None = None
    frozen: bool = False

    @property
    def binary(self) -> float:
        return self.zero + self.one


class BinaryCounter:
    """A forward hook that counts a layer's outputs: exactly 0, exactly 1, and those
    that differ from the layer's deploy form (its step: ``[x > 0]``, or its own
    threshold) on the same input."""

    def __init__(self) -> None:
        self.n = self.zero = self.one = self.changed = 0

    def __call__(self, module: nn.Module, inputs: tuple, y: Tensor) -> None:
        x = inputs[0]
        y = y.detach()
        self.n += y.numel()
        self.zero += int((y == 0).sum())
        self.one += int((y == 1).sum())
        step = deploy_form(module) if is_binarizable(module) else F.step
        self.changed += int((y != step(x.detach()).to(y.device)).sum())


def _batches(data) -> Iterable[Tensor]:
    if isinstance(data, Tensor):
        yield data
        return
    for batch in data:
        yield batch[0] if isinstance(batch, (tuple, list)) else batch


@torch.no_grad()
def run_hooked(model: nn.Module, data, hooks: dict[nn.Module, object], max_batches: int | None = None) -> None:
    """Run ``data`` (a tensor, or batches of tensors or ``(x, y)``) through ``model`` in
    eval mode with a forward hook on each module of ``hooks``; the hooks are removed and
    the model's mode restored after."""
    handles = [m.register_forward_hook(fn) for m, fn in hooks.items()]
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    try:
        for i, x in enumerate(_batches(data)):
            if max_batches is not None and i >= max_batches:
                break
            model(x.to(device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)


@torch.no_grad()
def binarization_stats(model: nn.Module, data, max_batches: int | None = None) -> dict[str, LayerStats]:
    """Per activation layer (ABR, Step, or a rival binary activation): slope spread and
    the shares of outputs that are exactly 0, exactly 1, in between, and that the step
    would change.

    ``data`` is a tensor, or an iterable of tensors or ``(x, y)`` batches; it is run
    through ``model`` in eval mode (the model's mode is restored after).
    """
    layers = {n: m for n, m in model.named_modules() if _counted(m)}
    counters = {n: BinaryCounter() for n in layers}
    run_hooked(model, data, {m: counters[n] for n, m in layers.items()}, max_batches)
    out = {}
    for name, m in layers.items():
        c = counters[name]
        s = _slope_of(m)
        n = max(c.n, 1)
        out[name] = LayerStats(
            slope_min=None if s is None else s.min().item(),
            slope_mean=None if s is None else s.mean().item(),
            slope_max=None if s is None else s.max().item(),
            zero=c.zero / n,
            one=c.one / n,
            between=(c.n - c.zero - c.one) / n,
            changed=c.changed / n,
            numel=c.n,
            threshold=fires_above(m if is_step(m) else deploy_form(m)),
            frozen=bool(getattr(m, "frozen", False)),
        )
    return out


def _counted(m: nn.Module) -> bool:
    return is_binarizable(m) or is_step(m)


def non_binary_outputs(stats: dict[str, LayerStats]) -> dict:
    """What a deployed network's check reports: the number of layers, of outputs seen,
    and of outputs not exactly 0 or 1, from :func:`binarization_stats` of that network."""
    return {
        "layers": len(stats),
        "non_binary_outputs": sum(round(s.between * s.numel) for s in stats.values()),
        "outputs_checked": sum(s.numel for s in stats.values()),
    }


def mean_slope(model: nn.Module, frozen: bool = True) -> float | None:
    """Mean effective slope over every ABR unit of ``model`` (``frozen=False``: of the
    ABRs not yet frozen into their steps); None without such ABRs."""
    slopes = [
        m.effective_slope().detach().flatten()
        for m in model.modules()
        if isinstance(m, ABR) and (frozen or not m.frozen)
    ]
    return torch.cat(slopes).mean().item() if slopes else None


def _slope_of(m: nn.Module) -> Tensor | None:
    if isinstance(m, ABR) and not m.has_uninitialized_params():
        return m.effective_slope().detach()
    return None


@dataclass
class SummaryRow:
    name: str
    kind: str
    shape: tuple[int, ...]
    activation: bool  # a hidden representation (the output of an activation layer)
    float_bits: int  # per example, stored as float32
    deploy_bits: int  # per example, once deployed: 1 bit per element after a step

    @property
    def numel(self) -> int:
        return self.float_bits // 32


@dataclass
class Summary:
    """Activation memory per example, float32 against deployed binary (cf. larq's
    ``models.summary``, which reports weights only)."""

    rows: list[SummaryRow] = field(default_factory=list)

    def _total(self, attr: str, activations_only: bool) -> int:
        return sum(getattr(r, attr) for r in self.rows if r.activation or not activations_only)

    @property
    def hidden_float_bits(self) -> int:
        return self._total("float_bits", True)

    @property
    def hidden_binary_bits(self) -> int:
        return self._total("deploy_bits", True)

    @property
    def ratio(self) -> float:
        """Compression of the hidden representations: float32 bits / deployed bits."""
        return self.hidden_float_bits / max(self.hidden_binary_bits, 1)

    @property
    def all_float_bits(self) -> int:
        return self._total("float_bits", False)

    @property
    def all_deploy_bits(self) -> int:
        return self._total("deploy_bits", False)

    def to_dict(self) -> dict:
        return {
            "layers": [
                {
                    "name": r.name,
                    "kind": r.kind,
                    "shape": list(r.shape),
                    "activation": r.activation,
                    "float32_bits": r.float_bits,
                    "binary_bits": r.deploy_bits,
                }
                for r in self.rows
            ],
            "hidden_float32_bits": self.hidden_float_bits,
            "hidden_binary_bits": self.hidden_binary_bits,
            "ratio": self.ratio,
            "all_float32_bits": self.all_float_bits,
            "all_deploy_bits": self.all_deploy_bits,
        }

    def __str__(self) -> str:
        head = f"{'layer':<28} {'kind':<14} {'output shape':<18} {'float32 bits':>13} {'binary bits':>12}"
        lines = [head, "-" * len(head)]
        for r in self.rows:
            mark = "*" if r.activation else " "
            lines.append(
                f"{r.name[:27]:<27}{mark} {r.kind[:14]:<14} {str(list(r.shape)):<18} {r.float_bits:>13,} {r.deploy_bits:>12,}"
            )
        lines.append("-" * len(head))
        lines.append(
            f"hidden representations (*): {self.hidden_float_bits:,} bits float32 -> "
            f"{self.hidden_binary_bits:,} bits binary per example ({self.ratio:.1f}x smaller)"
        )
        lines.append(f"all layer outputs: {self.all_float_bits:,} -> {self.all_deploy_bits:,} bits per example")
        return "\n".join(lines)


_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardtanh)


@torch.no_grad()
def summary(model: nn.Module, input_shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> Summary:
    """Bits of hidden state per example, per layer, in float32 and once deployed.

    ``input_shape`` excludes the batch dimension. Layers whose output is binary at
    deploy time (ABR, Step and the like) count 1 bit per element, others 32.
    """
    rows: list[SummaryRow] = []

    def hook(name: str):
        def record(m: nn.Module, inputs: tuple, y) -> None:
            if not isinstance(y, Tensor):
                return
            n = y[0].numel()
            binary = _counted(m)
            activation = binary or isinstance(m, _ACTIVATIONS)
            rows.append(
                SummaryRow(name, type(m).__name__, tuple(y.shape[1:]), activation, 32 * n, n if binary else 32 * n)
            )

        return record

    leaves = [(n, m) for n, m in model.named_modules() if n and not list(m.children())]
    handles = [m.register_forward_hook(hook(n)) for n, m in leaves]
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    try:
        model.eval()(torch.zeros((1, *input_shape), dtype=dtype, device=device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return Summary(rows)


@torch.no_grad()
def slopes_at_shares(
    model: nn.Module, abrs: dict, x: Tensor | None, shares: dict[str, float], nonnegative: Iterable[str] = ()
) -> dict[str, dict]:
    """Per ABR of ``abrs`` (name -> module) and per named share ``s`` of ``shares``: the
    slope ``w`` at which a share ``s`` of its inputs on ``x`` satisfies ``|w x| < 1``, or
    for the names in ``nonnegative`` a share ``s`` of its inputs ``x >= 0`` satisfies
    ``w x < 1`` (None where that quantile is 0). Where BinarizationSchedule's floors end,
    and its windows with ``window_share``."""
    if x is None:
        return {}
    inputs: dict[str, Tensor] = {}
    hooks = {m: (lambda m, i, o, n=n: inputs.__setitem__(n, i[0].detach())) for n, m in abrs.items()}
    run_hooked(model, x, hooks)
    out = {}
    nonnegative = set(nonnegative)
    for name, v in inputs.items():
        flat = v.flatten().float()
        a = flat.abs()[: 1 << 24]
        out[name] = {}
        for key, s in shares.items():
            values = flat[flat >= 0][: 1 << 24] if key in nonnegative else a  # (quantile's size limit)
            q = torch.quantile(values, s).item() if values.numel() else 0.0
            out[name][key] = 1.0 / q if q > 0 else None
    return out
