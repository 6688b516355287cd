"""``ABR`` and ``Step`` modules: thin wrappers over :mod:`abrnet.functional`."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.modules.lazy import LazyModuleMixin
from torch.nn.parameter import UninitializedParameter

from . import functional as F


class ABR(LazyModuleMixin, nn.Module):
    """Adjustable bounded rectifier, ``y = clamp(slope_c * x, 0, 1)`` (Wu et al. 2015).

    Args:
        num_channels: channels along ``channel_dim``. ``None`` takes it from the first
            input (the module is lazy until then).
        channel_dim: the dimension that holds channels: 1 for (N, C), (N, C, L) and
            (N, C, H, W); -1 for channel-last layouts.
        shared: one slope for the whole layer instead of one per channel.
        init_slope: initial slope (the paper uses 1).
        min_slope: floor on the slope used in the forward pass and in the growth
            term, so both stay finite. Must be > 0.
        growth_mult: this layer's multiplier on the growth strength.
        binary_loss: weight ``lambda`` of the optional per-output penalty
            ``lambda * min(y, 1 - y)``; 0 disables it. Read the total with
            :func:`abrnet.binary_loss` after a forward pass.
    """

    cls_to_become = None  # stay an ABR after materialising: binarize() looks for it

    def __init__(
        self,
        num_channels: int | None = None,
        channel_dim: int = 1,
        shared: bool = False,
        init_slope: float = 1.0,
        min_slope: float = 1e-3,
        growth_mult: float = 1.0,
        binary_loss: float = 0.0,
    ) -> None:
        super().__init__()
        if not min_slope > 0:
            raise ValueError(f"min_slope must be > 0, got {min_slope}")
        if not init_slope >= min_slope:
            raise ValueError(f"init_slope must be >= min_slope ({min_slope}), got {init_slope}")
        if growth_mult < 0 or binary_loss < 0:
            raise ValueError("growth_mult and binary_loss must be >= 0")
        self.channel_dim = channel_dim
        self.shared = shared
        self.init_slope = float(init_slope)
        self.min_slope = float(min_slope)
        self.growth_mult = float(growth_mult)
        self.binary_loss = float(binary_loss)
        self.last_binary_loss: Tensor | None = None
        # (slope._version, min_slope) when clamp_slopes_ last put every slope at or above
        # the floor: while both still hold, the forward pass can skip the floor.
        self.floored_at: tuple[int, float] | None = None
        # Set by BinarizationSchedule in its later stages: while training, the backward
        # pass is the surrogate window of slope ``window`` (functional.windowed); a frozen
        # layer's forward is its exact step. ``window_width``, when the schedule learns the
        # window: a 0-dim tensor holding its width 1/w0, which takes the window's gradient.
        self.window: float | None = None
        self.window_width: Tensor | None = None
        self.frozen = False
        # ``rounded`` (set by the schedule with ``window``, or by loading a saved nonzero
        # threshold): the bounded rectifier sits about the threshold, its step [x > threshold],
        # the middle of the window [0, width), which rounds the bounded rectifier; the
        # threshold is a buffer so that the saved weights deploy to the same network.
        self.rounded = False
        self.register_buffer("threshold", torch.zeros(()))
        if shared:
            num_channels = 1
        if num_channels is None:
            self.slope = UninitializedParameter()
        else:
            self.slope = nn.Parameter(torch.empty(num_channels))
            self.reset_parameters()

    def __getstate__(self) -> dict:
        # last_binary_loss is tied to the last autograd graph, which deepcopy (as in
        # binarize) and pickling refuse; it is recomputed on the next forward anyway.
        state = self.__dict__.copy()
        state["last_binary_loss"] = None
        return state

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # Weights saved before the threshold existed deploy at 0, as they did then; a
        # saved threshold makes the loaded layer the rounded one it was in training.
        state_dict.setdefault(prefix + "threshold", torch.zeros(()))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self.rounded = bool(self.threshold != 0)

    def reset_parameters(self) -> None:
        if not self.has_uninitialized_params():
            nn.init.constant_(self.slope, self.init_slope)

    def initialize_parameters(self, x: Tensor) -> None:  # called by LazyModuleMixin
        if self.has_uninitialized_params():
            with torch.no_grad():
                self.slope.materialize((x.shape[self.channel_dim],), device=x.device)
                self.reset_parameters()

    def effective_slope(self) -> Tensor:
        """The slope the forward pass uses: ``max(slope, min_slope)``."""
        return F.floor_slope(self.slope, self.min_slope)

    def forward(self, x: Tensor) -> Tensor:
        if (self.window is not None or self.frozen) and self.last_binary_loss is not None:
            # The binary loss needs the ABR's own gradient: none from here on (and a term
            # left from an earlier step would hold a freed graph). (Set only when needed:
            # a module's setattr costs more than a small layer's kernel.)
            self.last_binary_loss = None
        offset = 0.5 if self.rounded else 0.0
        if self.frozen:
            if self.window is not None and torch.is_grad_enabled():
                return F.windowed(x, self.window, width=self.window_width, offset=offset)
            return F.step(x - self.threshold) if self.rounded else F.step(x)
        if self.rounded:  # the bounded rectifier about its threshold: clamp(w (x - t) + 1/2, 0, 1)
            windowed = self.window is not None and torch.is_grad_enabled()
            with torch.set_grad_enabled(torch.is_grad_enabled() and not windowed):  # the window takes the gradient
                w = F._broadcast(self.effective_slope(), x, self.channel_dim).to(x.dtype)
                y = torch.nn.functional.hardtanh((x - self.threshold) * w + 0.5, 0.0, 1.0)
            return F.windowed(x, self.window, y, width=self.window_width, offset=offset) if windowed else y
        # (Not under torch.compile, which sees the floor's kernels fused anyway.)
        floored = not torch.compiler.is_compiling() and self.floored_at == (self.slope._version, self.min_slope)
        if self.window is not None and torch.is_grad_enabled():
            with torch.no_grad():
                y = F.abr(x, self.slope, self.channel_dim, self.min_slope, floored)
            return F.windowed(x, self.window, y, width=self.window_width)
        y = F.abr(x, self.slope, self.channel_dim, self.min_slope, floored)
        if self.binary_loss > 0 and self.training:
            # Per example: summed over units, averaged over the batch, so the gradient
            # on each output is +-lambda / N, the same scale as a mean task loss.
            self.last_binary_loss = self.binary_loss * F.binary_penalty(y).sum() / max(len(y), 1)
        return y

    def to_step(self) -> nn.Module:
        """The deploy form: ``Step``, ``[x > 0]``, or where the schedule rounded this layer,
        ``[x > threshold]`` (a :class:`ThresholdStep`). Either way every output is 0/1."""
        t = self.threshold.detach()
        if not bool(t != 0):
            return Step()
        t = t.reshape(1).clone()
        return ThresholdStep(threshold=t, sign=torch.ones_like(t), channel_dim=self.channel_dim)

    def extra_repr(self) -> str:
        if self.has_uninitialized_params():
            shape = "lazy"
        else:
            shape = "shared" if self.shared else f"{self.slope.numel()}"
        parts = [shape, f"channel_dim={self.channel_dim}", f"init_slope={self.init_slope:g}"]
        if not self.has_uninitialized_params():
            s = self.slope.detach()
            parts.append(f"slope=[{s.min().item():.3g}, {s.mean().item():.3g}, {s.max().item():.3g}]")
        if self.growth_mult != 1.0:
            parts.append(f"growth_mult={self.growth_mult:g}")
        if self.binary_loss:
            parts.append(f"binary_loss={self.binary_loss:g}")
        if self.frozen:
            parts.append("frozen")
        if self.window is not None:
            parts.append(f"window={self.window:.3g}")
        if bool(self.threshold != 0):
            parts.append(f"threshold={self.threshold.item():.3g}")
        return ", ".join(parts)


def is_step(m: nn.Module) -> bool:
    """A deploy-time step: a module whose outputs are 1 bit (``precision == 1``), such as
    :class:`Step` and :class:`ThresholdStep`. The one test the library uses."""
    return getattr(m, "precision", None) == 1


class Step(nn.Module):
    """Deploy-time activation ``H(x) = [x > 0]``: every output is exactly 0 or 1."""

    precision = 1  # bits per output, read by abrnet.summary

    def forward(self, x: Tensor) -> Tensor:
        return F.step(x)


class ThresholdStep(nn.Module):
    """``[BatchNorm(x) > 0]`` folded into a per-channel comparison ``[s_c * (x - t_c) > 0]``.

    ``s_c`` is the sign of the BatchNorm scale, ``t_c`` the input level where the
    normalised output crosses zero. Replaces a BatchNorm + Step pair at deploy time.
    """

    precision = 1

    def __init__(self, threshold: Tensor, sign: Tensor, channel_dim: int = 1) -> None:
        super().__init__()
        self.channel_dim = channel_dim
        self.register_buffer("threshold", threshold)
        self.register_buffer("sign", sign)

    @classmethod
    def from_batchnorm(cls, bn: nn.modules.batchnorm._BatchNorm, level: Tensor | float = 0.0) -> ThresholdStep:
        # BN(x) = gamma * (x - mean) / std + beta > level  <=>  sign(gamma) * (x - t) > 0
        # with t = mean - (beta - level) * std / gamma (level: a rounded ABR's threshold).
        # gamma == 0 gives a constant [beta > level].
        std = torch.sqrt(bn.running_var + bn.eps)
        gamma = bn.weight if bn.affine else torch.ones_like(std)
        beta = bn.bias if bn.affine else torch.zeros_like(std)
        gamma, beta = gamma.detach(), beta.detach() - torch.as_tensor(level, dtype=std.dtype).detach()
        safe = torch.where(gamma == 0, torch.ones_like(gamma), gamma)
        t = bn.running_mean - beta * std / safe
        t = torch.where(gamma == 0, torch.where(beta > 0, -torch.inf, torch.inf), t)
        return cls(t, torch.where(gamma < 0, -1.0, 1.0).to(t.dtype))

    def forward(self, x: Tensor) -> Tensor:
        t = F._broadcast(self.threshold, x, self.channel_dim)
        s = F._broadcast(self.sign, x, self.channel_dim)
        return F.step(s * (x - t))
