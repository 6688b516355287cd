"""Forms of the frozen layer's surrogate (forward the exact step, backward the window of
``abrnet.functional.windowed``), timed in a whole training step of a small net with
every ABR frozen under the adaptive schedule's hooks, against ReLU, side by side in one
process. On such nets a step is bound by per-op dispatch, so the form matters.

    python benchmarks/bench_surrogate.py --threads 1 --json out.json

Forms of the fixed window (``learn_window=False``): ``library`` (whatever
abrnet.functional.windowed is now); ``alpha`` (value + w0 * (s - s.detach()), the
product in add's alpha: the library's form until 2026-12-01); ``mul`` (value + (w0 * s -
w0 * s.detach()), the form before that); ``function`` (a Python autograd Function: two
kernels each way, plus Python's cost); ``inplace`` (the window's graph, its value
overwritten with the step under no_grad).

``--learned``: the learned window (the default), as the library computes it (``library``:
its autograd Function on inputs of ``_FUSED_MIN_NUMEL`` elements or more) and with
built-in ops at every size (``builtin``: the library before 2026-12-01 evening).
"""

from __future__ import annotations

import argparse
import statistics

import torch
from torch import nn
from torch.autograd.function import once_differentiable

import abrnet
from abrnet import functional as F
from bench_train_step import NETS, build, card, save_json, timed

SCHEMA = "abrnet-surrogate-forms-1"


def mul_form(x, w0, value=None):
    h = 0.5 / w0
    s = nn.functional.hardtanh(x, -h, h) * w0
    return (F.step(x) if value is None else value.detach()) + (s - s.detach())


class _Window(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w0):
        ctx.save_for_backward(x)
        ctx.w0 = w0
        return F.step(x)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        h = 0.5 / ctx.w0
        return torch.ops.aten.hardtanh_backward(grad, x, -h, h).mul_(ctx.w0), None


def function_form(x, w0, value=None):
    return _Window.apply(x, float(w0)) if value is None else mul_form(x, w0, value)


def inplace_form(x, w0, value=None):
    s = nn.functional.hardtanh(x, -0.5 / w0, 0.5 / w0) * w0
    with torch.no_grad():
        torch.sign(torch.relu(x), out=s) if value is None else s.copy_(value)
    return s


def alpha_form(x, w0, value=None):
    s = nn.functional.hardtanh(x, -0.5 / w0, 0.5 / w0)
    return torch.add(F.step(x) if value is None else value.detach(), s - s.detach(), alpha=w0)


def mask_form(x, w0, value=None):
    # One autograd node: x times a mask holding w0 inside the window (built by
    # hardtanh_backward from an expanded w0), its values then overwritten.
    h = 0.5 / w0
    m = torch.ops.aten.hardtanh_backward(F._scalar(float(w0), x.dtype).expand_as(x), x.detach(), -h, h)
    s = x * m
    out = s.detach()
    torch.clamp(x.detach(), 0, 1, out=out).ceil_() if value is None else out.copy_(value)
    return s


FORMS = {"library": F.windowed, "alpha": alpha_form, "mul": mul_form, "function": function_form,
         "inplace": inplace_form, "mask": mask_form}  # fmt: skip
# the learned window's forms: (windowed, the size from which it runs as one Function)
LEARNED = {"library": (F.windowed, F._FUSED_MIN_NUMEL), "builtin": (F.windowed, 1 << 62)}


def make_step(name: str, method: str, x, y, learned: bool = False):
    model = build(name, method, x.shape[1:]).train()
    opt = torch.optim.SGD(abrnet.param_groups(model, lr=1e-3), momentum=0.9)
    if method == "abr":  # every layer frozen: the schedule held in its last stage
        # the fixed forms are the centred window's; the learned ones the default (rounded) steps
        rounded = None if learned else False
        sched = abrnet.BinarizationSchedule(model, opt, 10**9, held_out=x, learn_window=learned, rounded=rounded)
        sched.step_count = int(0.99e9)
        sched._measure_end()
        sched._sync()

    def step() -> None:
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def _fixed(form):
    def call(x, w0, value=None, width=None, offset=0.0):
        assert width is None and not offset, "the fixed forms time the centred fixed window only"
        return form(x, w0, value)

    return call


def bench(name: str, repeats: int, iters: int, learned: bool = False) -> dict:
    shape, batch = NETS[name]
    x, y = torch.randn(batch, *shape), torch.randint(0, 10, (batch,))
    if name.startswith(("resnet", "quick", "caffenet")):
        x = x.contiguous(memory_format=torch.channels_last)  # as bench_train_step runs them
    library, fused = F.windowed, F._FUSED_MIN_NUMEL
    # (the ABRs pass width=None to a fixed window's form)
    forms = LEARNED if learned else {k: (_fixed(f), fused) for k, f in FORMS.items()}
    steps = {"relu": (make_step(name, "relu", x, y), (library, fused))}
    steps |= {form: (make_step(name, "abr", x, y, learned), f) for form, f in forms.items()}

    def run(k: str, n: int) -> float:
        F.windowed, F._FUSED_MIN_NUMEL = steps[k][1]
        return timed(steps[k][0], n, lambda: None)

    times: dict[str, list[float]] = {k: [] for k in steps}
    try:
        for k in steps:  # warm-up
            run(k, 2)
        for r in range(repeats):  # interleaved, alternating the order, so drift hits all
            for k in steps if r % 2 == 0 else reversed(steps):
                times[k].append(run(k, iters))
    finally:
        F.windowed, F._FUSED_MIN_NUMEL = library, fused
    relu = statistics.median(times["relu"])
    return {"model": name, "batch": batch, "relu_ms": 1e3 * relu,
            "forms": {k: {"ms": 1e3 * statistics.median(v), "x_relu": statistics.median(v) / relu}
                      for k, v in times.items() if k != "relu"}}  # fmt: skip


def table(rows: list[dict], forms: list[str] | None = None) -> str:
    forms = forms or (list(rows[0]["forms"]) if rows else list(FORMS))
    lines = ["| model | batch | ReLU ms/step | " + " | ".join(f"{f} ms (x ReLU)" for f in forms) + " |",
             "|---|---|---|" + "---|" * len(forms)]  # fmt: skip
    for r in rows:
        cells = " | ".join(f"{r['forms'][f]['ms']:.3f} ({r['forms'][f]['x_relu']:.3f})" for f in forms)
        lines.append(f"| {r['model']} | {r['batch']} | {r['relu_ms']:.3f} | {cells} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="mlp,lenet")
    p.add_argument("--repeats", type=int, default=41)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--learned", action="store_true", help="the learned window's forms (see above)")
    p.add_argument("--json", help="also write the rows here")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cpu = torch.device("cpu")
    print(f"{card(cpu)}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.repeats} repeats x {args.iters} steps, interleaved")  # fmt: skip
    print(table([], list(LEARNED) if args.learned else None))
    rows = []
    for name in args.models.split(","):
        rows.append(bench(name, args.repeats, args.iters, args.learned))
        print(table(rows[-1:]).split("\n", 2)[2], flush=True)
    if args.json:
        save_json(args.json, SCHEMA, cpu, rows)


if __name__ == "__main__":
    main()
