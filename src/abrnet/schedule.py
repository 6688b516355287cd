"""Binarization as a schedule over a known budget of optimizer steps, the way
``torch.optim.lr_scheduler`` schedules a learning rate.

:class:`BinarizationSchedule` drives every binary activation of a model to its exact
step by the last step, whatever the model, batch size or number of processes: written in
progress ``p = step / total_steps``, it aims at the end state (every output exactly 0/1,
training form = deployed form). Three stages, from docs/method.md's study (with the
default rounded steps the first two take the first step alone; with centred steps they
start at 0.01 and 0.02 of the steps, at 0.1 and 0.2 for several layers):

1. ``learn`` (``p < binarize_at``): the ABRs train as bounded rectifiers (optionally
   with a growth term; none by default), which sets each layer's weights, slopes and
   scale of pre-activations (by default one step, which measures them).
2. ``binarize`` (``binarize_at <= p < freeze_at``): each layer's slope floor rises
   geometrically from where its slopes are to the slope at which ``saturate`` of its
   held-out pre-activations fall outside the linear region. By default (``surrogate``)
   each ABR's backward is from then on a window about its step's threshold, of the
   width ``1/w0`` of its linear region at the layer's mean slope ``w0``, and
   (``learn_window``, the default) learned from there, one width per layer, as 1-bit
   PACT learns its clip level. By default (``rounded``) the step rounds the bounded
   rectifier, ``[x > width/2]``, and the window is the linear region ``[0, width)``
   itself, which contracts about its middle; otherwise the step is ``[x > 0]`` and the
   window centred on it. Without ``surrogate``, the ABR's own ``w * grad``, with the
   gradients upstream divided by the floors' rise.
3. ``freeze`` (``p >= freeze_at``): the activations are frozen into their steps, all at
   once with rounded steps, else first to last at evenly spaced steps; each frozen
   step's forward is exactly 0/1 and its backward the surrogate, so the rest of the
   budget trains the binary network itself. At the last step every activation is a step:
   the training form is the deployed network.

Use in a plain loop (hooks on the optimizer do the per-step work)::

    schedule = abrnet.BinarizationSchedule(model, optimizer, total_steps=epochs * len(loader))
    ...                                   # the loop, unchanged: backward, optimizer.step()
    deployed = abrnet.binarize(model)     # exactly 0/1, equal to the trained model
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .functional import check_growth_kind
from .penalty import abr_layers, add_growth_grad_, clamp_layers_
from .stats import slopes_at_shares
from .steps import binary_layers, freeze, upstream_params
from .windows import AfterStep, add_widths, average_grads, place_thresholds, place_widths

# Where the stages start, as shares of the steps, and how saturated each layer ends:
# the defaults of this class and of abrnet's run config. Rounded steps (the default) are
# binary from the first step, as 1-bit PACT is: the bounded rectifier's own stage, even
# 1% of the steps long, cost the quick net 0.26 points (3 seeds; docs/results.md). The
# slopes after that first step set the windows, and every layer freezes then.
BINARIZE_AT, FREEZE_AT, SATURATE = 0.0, 0.0, 0.99
# The centred steps [x > 0] (rounded=False) need a bounded-rectifier stage: 1% of the
# steps for one binary layer (nothing binary feeds it), 10% for several, without which
# the quick net's four lose 0.28 points (3 seeds; docs/results.md).
CENTRED_BINARIZE_AT, CENTRED_FREEZE_AT = 0.01, 0.02
CENTRED_SEVERAL_BINARIZE_AT, CENTRED_SEVERAL_FREEZE_AT = 0.1, 0.2
# Each step rounds its bounded rectifier (docs/method.md, "Rounded steps").
ROUNDED = True


def stage_defaults(binary_layers: int, rounded: bool = ROUNDED) -> tuple[float, float]:
    """The default ``(binarize_at, freeze_at)`` for a model with this many binary layers."""
    if rounded:
        return BINARIZE_AT, FREEZE_AT
    if binary_layers > 1:
        return CENTRED_SEVERAL_BINARIZE_AT, CENTRED_SEVERAL_FREEZE_AT
    return CENTRED_BINARIZE_AT, CENTRED_FREEZE_AT


# No growth term by default: it pushes units out of the linear region while they still
# have to learn, and the rising floors binarize on their own (measured: docs/results.md).
GROWTH = 0.0


class BinarizationSchedule:
    """Drive ``model``'s binary activations to exact steps over ``total_steps`` steps of
    ``optimizer``.

    Args:
        growth, kind: strength and kind of the growth term in the ``learn`` stage.
        binarize_at, freeze_at: where the ``binarize`` and ``freeze`` stages start, as
            fractions of ``total_steps``; by default (None) both 0 with ``rounded``
            steps (binary from the first step on, once it has measured the slopes),
            else 0.01 and 0.02, or 0.1 and 0.2 for several layers (:func:`stage_defaults`).
        saturate: share of a layer's held-out pre-activations that must lie outside the
            linear region (``|w x| >= 1``) when the floors reach their end.
        held_out: a batch of inputs (or None) on which the end slopes are measured when
            the ``binarize`` stage starts; without it the slopes at that moment times
            ``end_mult`` are the end.
        end_mult: fallback rise of the floors when there is no held-out batch.
        max_slope: cap on any end slope.
        compensate: without ``surrogate``, the power of the floors' rise by which upstream
            gradients are divided.
        straight_through: frozen layers pass their ABR's gradient backward (the forward
            stays the exact step), so the layers before them keep learning.
        surrogate: (default) from the ``binarize`` stage on, each ABR's gradient is
            the centred window of the module docstring, frozen layers' too (no
            compensation needed). ``False``: the ABR's own gradient, compensated.
        learn_window: (default, with ``surrogate``) each layer's window width ``1/w0``
            is trained, with the gradient of ``clamp(x/width + 1/2, 0, 1)``, in
            ``optimizer``'s first param group (its rate, decay and schedule): build the
            schedule before loading the optimizer's state on a resume. ``False``: the
            window stays at ``w0``.
        window_share: each layer's ``w0`` set so that this share of its held-out
            inputs lies inside its window: ``|x| < 1/(2 w0)`` centred, or with
            ``rounded`` steps this share of its inputs ``x >= 0`` inside ``[0, 1/w0)``;
            ``None`` (or no held-out batch): the layer's mean slope (docs/method.md).
        rounded: (default, with ``surrogate``) the step rounds the bounded rectifier
            instead of taking its lower end: from the ``binarize`` stage on each layer's step is
            ``[x > width/2]``, the middle of the linear region ``[0, width)`` that is
            now its window, so the backward is that of ``clamp(x/width, 0, 1)`` (1-bit
            PACT's); the linear regions contract about their middles, and the ABRs
            deploy as steps at ``width/2`` (their ``threshold`` buffers). ``False``: the
            paper's step ``[x > 0]``, the window centred on it. ``None``: ``surrogate``.

    The schedule registers hooks on ``optimizer`` (unless ``hook_optimizer=False``):
    before each ``step()`` it runs :meth:`before_step` (the growth gradient, and the
    gradients upstream of the binary layers divided by the floors' rise); after it,
    :meth:`after_step` (slopes clamped to their floors, layers frozen when due).
    :meth:`state_dict` and :meth:`load_state_dict` carry it across a resume. Under
    ``DistributedDataParallel``, pass ``find_unused_parameters=True``: from the
    ``binarize`` stage on the slopes take no gradient (the floors set them); the window
    widths are not the model's parameters, so the schedule averages their gradients
    over the processes itself.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        total_steps: int,
        *,
        growth: float = GROWTH,
        kind: str = "log",
        binarize_at: float | None = None,
        freeze_at: float | None = None,
        saturate: float = SATURATE,
        held_out: Tensor | None = None,
        end_mult: float = 30.0,
        max_slope: float = 1e4,
        compensate: float = 1.0,
        straight_through: bool = False,
        surrogate: bool = True,
        window_share: float | None = None,
        learn_window: bool = True,
        rounded: bool | None = None,
        hook_optimizer: bool = True,
        step: int = 0,
    ) -> None:
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        self.abrs = dict(abr_layers(model))
        self._layers = [m for m in self.abrs.values() if not m.has_uninitialized_params()]
        # The ABRs it drives, in order (a rival activation in the same model is left alone).
        self.names = [n for n in binary_layers(model) if n in self.abrs]
        rounded = ROUNDED and surrogate if rounded is None else rounded
        auto = stage_defaults(len(self.names), rounded)
        # an unset stage never crosses a given one
        binarize_at = min(auto[0], 1.0 if freeze_at is None else freeze_at) if binarize_at is None else binarize_at
        freeze_at = max(auto[1], binarize_at) if freeze_at is None else freeze_at
        if not 0 <= binarize_at <= freeze_at <= 1:
            raise ValueError(f"need 0 <= binarize_at ({binarize_at}) <= freeze_at ({freeze_at}) <= 1")
        if not 0 < saturate < 1:
            raise ValueError(f"saturate must lie in (0, 1), got {saturate}")
        if rounded and not surrogate:
            raise ValueError("rounded needs surrogate=True: the step moves to the middle of the surrogate window")
        if window_share is not None and not 0 < window_share < 1:
            raise ValueError(f"window_share must lie in (0, 1), got {window_share}")
        self.model, self.optimizer, self.total_steps = model, optimizer, int(total_steps)
        self.growth, self.kind = growth, check_growth_kind(kind)
        self.binarize_at, self.freeze_at = binarize_at, freeze_at
        self.saturate, self.held_out, self.end_mult, self.max_slope = saturate, held_out, end_mult, max_slope
        self.compensate, self.straight_through, self.surrogate = compensate, straight_through or surrogate, surrogate
        self.window_share, self.rounded = window_share, rounded
        self.step_count = int(step)
        self.start: dict[str, float] = {}  # per ABR: mean slope when the binarize stage began
        self.end: dict[str, float] = {}  # per ABR: the floor at the end of that stage
        self.window: dict[str, float] = {}  # per ABR: the surrogate window's slope w0
        self.base_floor = {n: m.min_slope for n, m in self.abrs.items()}
        self._frozen: list[str] = []  # frozen so far, first to last
        self._moving = list(self._layers)  # the layers whose slopes are clamped after a step
        self._synced: tuple | None = None  # (stage, frozen, measured) at the last _sync
        self._handles: list = []  # freeze hooks (straight_through without surrogate)
        self._upstream = upstream_params(model, self.names)
        # per ABR: the window's width 1/w0, learned (a tensor, not a model parameter: the
        # model's state_dict and the deployed net do not change); set when the stage begins
        self.width = add_widths(optimizer, self.abrs, model) if surrogate and learn_window else {}
        self._after: AfterStep | None = None  # their per-step work, built once they are placed
        self._hooks = []
        if hook_optimizer:
            self._hooks = [optimizer.register_step_pre_hook(lambda *a: self.before_step()),
                           optimizer.register_step_post_hook(lambda *a: self.after_step())]  # fmt: skip

    # -- where we are --------------------------------------------------------------
    @property
    def progress(self) -> float:
        return min(self.step_count / self.total_steps, 1.0)

    @property
    def stage(self) -> str:
        p = self.progress
        return "learn" if p < self.binarize_at else "binarize" if p < self.freeze_at else "freeze"

    @property
    def current_growth(self) -> float:
        """The growth strength applied now (only in the ``learn`` stage)."""
        return self.growth if self.stage == "learn" else 0.0

    def floor(self, name: str, progress: float | None = None) -> float:
        """The slope floor of ABR ``name`` at ``progress`` (default: now)."""
        p = self.progress if progress is None else progress
        if name not in self.end or p < self.binarize_at:
            return self.base_floor[name]
        span = max(self.freeze_at - self.binarize_at, 1e-12)
        t = min((p - self.binarize_at) / span, 1.0)
        w0, w1 = self.start[name], self.end[name]
        return w0 * (w1 / w0) ** t

    def rise(self) -> float:
        """How far the floors have risen, as a geometric mean over layers (1 before the
        ``binarize`` stage): the factor by which gradients upstream are divided."""
        if not self.end or self.progress < self.binarize_at:
            return 1.0
        logs = [math.log(max(self.floor(n), self.start[n]) / self.start[n]) for n in self.end]
        return math.exp(sum(logs) / len(logs))

    def frozen_count(self, progress: float | None = None) -> int:
        """How many binary layers (first to last) compute their step at ``progress``."""
        p = self.progress if progress is None else progress
        n = len(self.names)
        if p < self.freeze_at or n == 0:
            return 0
        if p >= 1.0 or self.rounded:  # rounded steps: the whole binary network at once, as PACT trains
            return n
        # Centred steps: layer k (0-based) freezes at freeze_at + k / n of the stage.
        return min(n, 1 + math.floor((p - self.freeze_at) / max(1.0 - self.freeze_at, 1e-12) * n))

    # -- the hooks: at every step, so the common case is a few attribute reads (a small
    # net's whole step is a few hundred µs: docs/benchmarks.md) ----------------------
    def before_step(self) -> None:
        """Between ``backward()`` and ``optimizer.step()``: add the growth gradient and
        divide the upstream gradients by the floors' rise. Called by the optimizer's
        hook unless ``hook_optimizer=False`` (a loop whose ``step()`` runs the backward
        pass in a closure, as Lightning's does, calls it after the backward itself)."""
        if self.growth > 0 and self.stage == "learn":
            add_growth_grad_(self.model, self.growth, self.kind)
        if self.width and self.end:
            average_grads(list(self.width.values()))
        r = 1.0 if self.surrogate else self.rise() ** self.compensate
        if r > 1.0:
            grads = [p.grad for p in self._upstream if p.grad is not None]
            if grads:  # (.grad holds no graph: in-place is safe outside no_grad)
                torch._foreach_div_(grads, r)

    def after_step(self) -> None:
        """After ``optimizer.step()``: count the step, raise the floors, clamp the
        slopes to them and freeze the layers that are due."""
        self.step_count += 1
        if self.abrs and not self.end and self.progress >= self.binarize_at:
            self._measure_end()
        if len(self._layers) < len(self.abrs):  # lazy ABRs materialised since
            self._layers = [m for m in self.abrs.values() if not m.has_uninitialized_params()]
            self._synced = None
        self._sync()
        if self.width and self.end:  # (fixed windows do not move)
            self._settle_widths()
        if self._moving:
            with torch.no_grad():
                clamp_layers_(self._moving, moved_only=True)

    def _sync(self) -> None:
        """Bring floors, surrogate windows and frozen layers to the current step: all are
        functions of the step and of what was measured, and outside the ``binarize``
        stage change only with the stage, a freeze or the measurement."""
        # (none freezes before the stage's measurement: at binarize_at = 0, the first step)
        stage, want = self.stage, self.frozen_count() if self.end or not self.abrs else 0
        key = (stage, want, len(self.end))
        if stage != "binarize" and key == self._synced:
            return
        window = self.surrogate and bool(self.end)
        for name, m in self.abrs.items():  # (set only on change: a module's setattr is slow)
            floor = self.floor(name)
            if m.min_slope != floor:
                m.min_slope = floor
            if window and m.window != self.window.get(name, self.start[name]):
                m.window = self.window.get(name, self.start[name])
            if window and m.window_width is not self.width.get(name):
                m.window_width = self.width.get(name)
            if window and m.rounded != self.rounded:
                m.rounded = self.rounded
        if window and self.rounded:
            place_thresholds(self.abrs, {n: w for n, w in self._fixed_widths().items() if n not in self.width})
        if window and self.width:
            self._settle_widths()
        for name in self.names[len(self._frozen) : want]:
            if self.straight_through and not self.surrogate:  # the ABR's own gradient: a hook
                self._handles.extend(freeze(self.model, [name], straight_through=True))
            else:  # the exact step, with the surrogate window or no gradient
                self.abrs[name].frozen = True
            self._frozen.append(name)
        # A frozen layer's forward is its step: its slope takes no part, and needs no clamp.
        self._moving = [m for m in self._layers if not m.frozen]
        self._synced = key

    def _settle_widths(self) -> None:
        """The learned widths clamped, and the rounded steps' thresholds at their middles."""
        if self._after is None:
            self._after = AfterStep(self.width, self.abrs, 1.0 / self.max_slope, self.rounded)
        self._after()

    @torch.no_grad()
    def _measure_end(self) -> None:
        for name, m in self.abrs.items():
            self.start[name] = max(m.effective_slope().mean().item(), self.base_floor[name])
        shares = {"end": 1.0 - self.saturate} | ({"window": self.window_share} if self.window_share else {})
        # a rounded window [0, 1/w0) holds a share of the inputs x >= 0 (those below never enter it)
        positive = ("window",) if self.rounded else ()
        measured = slopes_at_shares(self.model, self.abrs, self.held_out, shares, nonnegative=positive)
        for name in self.abrs:
            got = measured.get(name, {})
            self.end[name] = min(
                max(got.get("end") or self.start[name] * self.end_mult, self.start[name]), self.max_slope
            )
            # centred, |x| < 1/(2 w0) holds the share: half the slope that puts it in |w x| < 1;
            # rounded, [0, 1/w0) holds it: that slope itself
            if got.get("window"):
                self.window[name] = min(got["window"] / (1 if self.rounded else 2), self.max_slope)
        # the learned windows start where the fixed ones would be
        place_widths(self.width, self.abrs, {n: w for n, w in self._fixed_widths().items() if n in self.width})
        self._after = None

    def _fixed_widths(self) -> dict[str, float]:
        """Each measured layer's window width ``1/w0`` as the stage began."""
        return {n: 1.0 / self.window.get(n, self.start[n]) for n in self.end}

    # -- state -----------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"step": self.step_count, "total_steps": self.total_steps, "start": dict(self.start),
                "end": dict(self.end), "window": dict(self.window),
                "width": {n: w.item() for n, w in self.width.items()}}  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        """Continue where a saved schedule stopped: floors and frozen layers are functions
        of the step and of the measured slopes, so both are rebuilt exactly."""
        self.step_count = int(state["step"])
        self.start, self.end = dict(state["start"]), dict(state["end"])
        self.window = dict(state.get("window", {}))  # (absent from older checkpoints)
        with torch.no_grad():
            for name, value in state.get("width", {}).items():
                if name in self.width:
                    self.width[name].fill_(value)
        self._synced = None
        self._sync()

    def remove(self) -> None:
        """Take the hooks off the optimizer and the surrogate windows off the ABRs (the
        frozen layers stay frozen)."""
        for h in self._hooks:
            h.remove()
        self._hooks = []
        for m in self.abrs.values():
            m.window, m.window_width = None, None

    def __repr__(self) -> str:
        return (f"BinarizationSchedule(step {self.step_count}/{self.total_steps}, stage {self.stage}, "
                f"rise {self.rise():.3g}, frozen {self.frozen_count()}/{len(self.names)})")  # fmt: skip
