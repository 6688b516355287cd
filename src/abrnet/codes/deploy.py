"""Multiplication-free inference on binary inputs: ``W @ b`` is a sum of selected columns.

:class:`BinaryInputLinear` replaces an ``nn.Linear`` whose input is a step's 0/1 output.
Split the K inputs into groups of ``g`` bits. For each group, precompute all ``2^g``
partial sums of its ``g`` columns of W; then ``W @ b`` is the sum of one table row per
group, picked by the group's bits read as an integer (``F.embedding_bag``, mode sum).
With ``g = 8`` a packed byte *is* the row index. At batch 1 the layer reads ``K/g``
rows of N floats instead of all ``K x N`` weights, which is what makes it faster than a
matrix-vector product, whose time is memory traffic. The price is the table's size:
``2^g / g`` times W (32x for g = 8, 4x for g = 4, 2x for g = 2). At larger batches
dense GEMM reuses each weight across the batch and wins, so the layer falls back to
``F.linear`` from ``dense_batch`` rows up (benchmarks/bench_binary_linear.py measures
the crossover; docs/deploy.md has the numbers).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..layers import is_step

GROUP_BITS = (1, 2, 4, 8)  # divisors of 8, so every group lies inside one packed byte
# Batch size from which dense F.linear is faster, measured at K = N = 4096 with one
# thread on a 2-core AMD EPYC VM (docs/deploy.md); g = 1 never beats it. Elsewhere a
# guess: measure with benchmarks/bench_binary_linear.py and pass dense_batch.
DENSE_BATCH = {1: 1, 2: 8, 4: 16, 8: 64}
_SHIFTS = torch.arange(7, -1, -1, dtype=torch.uint8)  # bitorder "big", as abrnet.codes.packing


def unpack_bits(packed: Tensor, dim: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """``(..., ceil(dim/8))`` uint8 -> ``(..., dim)`` 0/1 in ``dtype`` (torch twin of codes.unpack)."""
    bits = (packed.unsqueeze(-1) >> _SHIFTS.to(packed.device)) & 1
    return bits.flatten(-2)[..., :dim].to(dtype)


class BinaryInputLinear(nn.Module):
    """``F.linear`` for inputs that are exactly 0 or 1, by table lookup at small batch.

    Build it with :meth:`from_linear`. The input is either

    * a float tensor ``(..., K)`` of exact 0/1 values (a ``Step``'s output; other values
      give wrong results, unchecked for speed), grouped into table indices inside the
      call; or
    * a uint8 tensor ``(..., ceil(K/8))`` of bits packed as :func:`abrnet.codes.packing.pack`
      does (most significant bit first).

    The output is ``(..., N)`` in the weight's dtype. Inference only: no gradients.

    Memory: the layer keeps W and b for the dense path, plus a table of
    ``K/g * 2^g`` rows of N values, ``2^g / g`` times W (see ``table_bytes`` and
    ``table_ratio``). K is padded to a multiple of 8 with zero columns.
    """

    def __init__(self, weight: Tensor, bias: Tensor | None, group_bits: int = 8, dense_batch: int | None = None):
        super().__init__()
        if group_bits not in GROUP_BITS:
            raise ValueError(f"group_bits must be one of {GROUP_BITS}, got {group_bits}")
        self.out_features, self.in_features = weight.shape
        self.group_bits = group_bits
        self.dense_batch = DENSE_BATCH[group_bits] if dense_batch is None else int(dense_batch)
        self.register_buffer("weight", weight.detach().clone())
        self.register_buffer("bias", None if bias is None else bias.detach().clone())
        # The table is derived from W and b: not saved, rebuilt after load_state_dict.
        self.register_buffer("table", torch.empty(0), persistent=False)
        self.register_buffer("offsets", torch.empty(0, dtype=torch.long), persistent=False)
        self.register_buffer("split", torch.empty(0, dtype=torch.long), persistent=False)
        self.register_load_state_dict_post_hook(lambda module, _keys: module._build())
        self._build()

    @classmethod
    def from_linear(cls, linear: nn.Linear, group_bits: int = 8, dense_batch: int | None = None):
        """A copy of ``linear`` for 0/1 inputs, with groups of ``group_bits`` bits."""
        return cls(linear.weight, linear.bias, group_bits, dense_batch)

    @torch.no_grad()
    def _build(self) -> None:
        g, k = self.group_bits, self.in_features
        kp = -(-k // 8) * 8
        w = F.pad(self.weight, (0, kp - k)).t().reshape(kp // g, g, self.out_features)
        # Doubling: rows [2^i, 2^(i+1)) are rows [0, 2^i) plus one more column. Taking the
        # columns last to first makes column 0 the most significant bit, as packbits does.
        table = w.new_zeros(kp // g, 2**g, self.out_features)
        for i, j in enumerate(range(g - 1, -1, -1)):
            torch.add(table[:, : 2**i], w[:, j : j + 1], out=table[:, 2**i : 2 ** (i + 1)])
        if self.bias is not None:
            # Every lookup takes exactly one row of group 0, so adding b there saves an op.
            table[0] += self.bias
        self.table = table.reshape(-1, self.out_features).contiguous()
        self.offsets = torch.arange(kp // g, device=w.device) * 2**g
        # Byte value -> the 8/g group indices it holds, most significant group first.
        shifts = torch.arange(8 - g, -1, -g, device=w.device)
        self.split = (torch.arange(256, device=w.device)[:, None] >> shifts) & (2**g - 1)

    @property
    def table_bytes(self) -> int:
        return self.table.numel() * self.table.element_size()

    @property
    def weight_bytes(self) -> int:
        return self.weight.numel() * self.weight.element_size()

    @property
    def table_ratio(self) -> float:
        """Table memory over W's: ``2^g / g``, a little more when K is padded."""
        return self.table_bytes / self.weight_bytes

    def _indices(self, x: Tensor) -> Tensor:
        g = self.group_bits
        if x.dtype == torch.uint8:
            idx = x.long() if g == 8 else self.split[x.long()].flatten(-2)
        else:
            kp = len(self.offsets) * g
            if kp != self.in_features:
                x = F.pad(x, (0, kp - self.in_features))
            powers = 2.0 ** torch.arange(g - 1, -1, -1, device=x.device, dtype=x.dtype)
            idx = (x.reshape(len(x), kp // g, g) @ powers).long()  # exact: integers below 256
        return idx + self.offsets

    def forward(self, x: Tensor) -> Tensor:
        packed = x.dtype == torch.uint8
        width = -(-self.in_features // 8) if packed else self.in_features
        if x.shape[-1] != width:
            kind = "packed uint8 bytes" if packed else "0/1 values"
            raise ValueError(f"expected (..., {width}) {kind}, got shape {tuple(x.shape)}")
        lead = x.shape[:-1]
        x = x.reshape(-1, width)
        if not packed and not x.is_floating_point():  # bool or integer 0/1
            x = x.to(self.weight.dtype)
        if len(x) >= self.dense_batch:
            if packed:
                x = unpack_bits(x, self.in_features, self.weight.dtype)
            y = F.linear(x, self.weight, self.bias)
        else:
            y = F.embedding_bag(self._indices(x), self.table, mode="sum")
        return y.reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
            f"group_bits={self.group_bits}, dense_batch={self.dense_batch}, "
            f"table={self.table_bytes / 2**20:.1f} MiB ({self.table_ratio:.1f}x W)"
        )


# Modules that pass a step's 0/1 output through unchanged in eval mode.
_PASS_THROUGH = (nn.Flatten, nn.Identity, nn.Dropout)


def pack_linears(
    model: nn.Module, group_bits: int = 8, dense_batch: int | None = None, inplace: bool = False
) -> nn.Module:
    """Replace every ``nn.Linear`` fed straight by a step with a :class:`BinaryInputLinear`.

    The model-level deploy path for multiplication-free inference, applied after
    :func:`abrnet.binarize`: ``pack_linears(abrnet.binarize(model))``. A Linear qualifies
    when it follows a step layer (:func:`abrnet.layers.is_step`: ``Step`` or
    ``ThresholdStep``) in the same ``nn.Sequential``, with only ``Flatten``, ``Identity``
    or ``Dropout`` between them. Returns a copy (``inplace=False``) in eval mode.
    Each replaced layer adds a table of ``2^g / g`` times its weight (32x for g = 8).
    """
    if not inplace:
        model = copy.deepcopy(model)
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        after_step = False
        for name, m in seq.named_children():
            if isinstance(m, nn.Linear) and after_step:
                seq._modules[name] = BinaryInputLinear.from_linear(m, group_bits, dense_batch)
            if not isinstance(m, _PASS_THROUGH):
                after_step = is_step(m)
    return model.eval()
