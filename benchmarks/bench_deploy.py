"""Inference time of each recipe's network once deployed (every ABR replaced by its
step, ``abrnet.binarize``) against the same network with ReLU, forward only, under
``torch.inference_mode``. Both run side by side in one process, interleaved, and the
script prints medians and the ratio deployed / ReLU.

    python benchmarks/bench_deploy.py                    # CPU, the small nets
    python benchmarks/bench_deploy.py --models quick --batch 1,100 --json out.json
"""

from __future__ import annotations

import argparse
import statistics

import torch

import abrnet
from bench_train_step import NETS, build, card, save_json, timed

SCHEMA = "abrnet-deploy-forward-1"


def bench(name: str, batch: int, device: torch.device, repeats: int, iters: int, fmt) -> dict:
    shape, _ = NETS[name]
    x = torch.randn(batch, *shape, device=device).contiguous(memory_format=fmt)
    relu = build(name, "relu", shape).to(device, memory_format=fmt).eval()
    abr = build(name, "abr", shape).to(device, memory_format=fmt)
    abr(x[:1])  # materialise lazy slopes before the swap
    forwards = {"relu": relu, "deployed": abrnet.binarize(abr).eval()}
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times: dict[str, list[float]] = {k: [] for k in forwards}
    with torch.inference_mode():
        for f in forwards.values():  # warm-up
            timed(lambda f=f: f(x), 2, sync)
        for r in range(repeats):  # interleaved, alternating which goes first, so drift hits both
            for k in forwards if r % 2 == 0 else reversed(forwards):
                times[k].append(timed(lambda k=k: forwards[k](x), iters, sync))
    ratios = [d / r for d, r in zip(times["deployed"], times["relu"], strict=True)]
    return {
        "model": name, "batch": batch, "input": list(shape),
        "relu_ms": 1e3 * statistics.median(times["relu"]), "deployed_ms": 1e3 * statistics.median(times["deployed"]),
        "ratio_of_medians": statistics.median(times["deployed"]) / statistics.median(times["relu"]),
        "median_ratio": statistics.median(ratios),
    }  # fmt: skip


def table(rows: list[dict]) -> str:
    lines = ["| model | batch | ReLU ms | deployed ms | deployed / ReLU (ratio of medians) | median of ratios |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['model']} | {r['batch']} | {r['relu_ms']:.3f} | {r['deployed_ms']:.3f} | "
                     f"{r['ratio_of_medians']:.3f} | {r['median_ratio']:.3f} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="mlp,lenet,quick-fashion")
    p.add_argument("--batch", default="1,100", help="comma-separated batch sizes")
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--json", help="also write the rows here")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"device {device} ({card(device)}), torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.repeats} repeats x {args.iters} forwards, interleaved, channels_last")  # fmt: skip
    print(table([]))
    rows = []
    for name in args.models.split(","):
        for batch in (int(b) for b in args.batch.split(",")):
            rows.append(bench(name, batch, device, args.repeats, args.iters, torch.channels_last))
            print(table(rows[-1:]).split("\n", 2)[2], flush=True)
    if args.json:
        save_json(args.json, SCHEMA, device, rows)


if __name__ == "__main__":
    main()
