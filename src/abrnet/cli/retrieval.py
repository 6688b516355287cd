"""``abrnet retrieval RUN_DIR``: the standard retrieval protocol on a run's dataset
(:func:`abrnet.codes.protocol.run_retrieval`): every test item queries the training
items, relevant = same label; the deployed step's packed output by Hamming distance
against the same step's float input and the ReLU baseline's features by cosine, with
bytes per item and queries per second of exact top-k search. ``--json PATH`` also
writes the results there.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path)
    p.add_argument("--layer", help="a Step layer of the deployed net (default: the last hidden one)")
    p.add_argument("--k", default="100,1000", metavar="K1,K2", help="cut-offs for mAP@k and P@k (default: 100,1000)")
    p.add_argument("--limit-db", type=int, metavar="N", help="use the first N training items as the database")
    p.add_argument("--limit-queries", type=int, metavar="N", help="use the first N test items as queries")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    p.add_argument("--no-baseline", action="store_true", help="skip the ReLU baseline's features")
    p.add_argument("--threads", type=int, default=1, help="threads for the speed measurement (default: 1)")
    p.add_argument("--clock", choices=("cpu", "wall"),
                   help="speed timing: this thread's CPU time (default with 1 thread) or wall clock (default otherwise)")  # fmt: skip
    p.add_argument("--speed-queries", type=int, default=1000, metavar="N",
                   help="queries timed in the speed measurement (default: 1000)")  # fmt: skip
    p.add_argument("--speed-k", type=int, default=100, help="k of the timed top-k search (default: 100)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats; the median is reported (default: 3)")
    p.add_argument("--device", default="auto", help="where the networks run (the search is timed on the CPU)")


def parse_ks(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise UserError(f"--k takes comma-separated positive integers, got {text!r}") from None
    if not ks or min(ks) < 1:
        raise UserError(f"--k takes comma-separated positive integers, got {text!r}")
    return tuple(dict.fromkeys(ks))


def _row(name: str, res: dict | None, ks, note: str = "") -> str:
    if res is None:
        return f"  {name:<40} {note}"
    cells = [f"{res['mAP']:.4f}"] + [f"{res[f'{m}@{k}']:.4f}" for k in ks for m in ("mAP", "P")]
    return f"  {name:<40} " + "  ".join(f"{c:>8}" for c in cells)


def main(args: argparse.Namespace) -> int:
    from ..codes.encode import check_limit, padding_note
    from ..codes.protocol import run_retrieval
    from ..train.run import load_run

    ks = parse_ks(args.k)
    check_limit(args.limit_db, "--limit-db")
    check_limit(args.limit_queries, "--limit-queries")
    for name in ("threads", "speed_queries", "speed_k", "repeats"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.clock == "cpu" and args.threads > 1:
        raise UserError("--clock cpu counts this thread only: use --clock wall with --threads > 1")
    if args.json is not None and args.json.is_dir():
        raise UserError(f"--json {args.json} is a directory; give a file name such as retrieval.json")
    run = load_run(args.run_dir)
    out = run_retrieval(run, args.layer, ks, limit_db=args.limit_db, limit_queries=args.limit_queries,
                        baseline=not args.no_baseline, threads=args.threads, clock=args.clock,
                        speed_queries=args.speed_queries, speed_k=args.speed_k, repeats=args.repeats,
                        device=args.device)  # fmt: skip
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1) + "\n")

    print(f"retrieval: {out['model']} on {out['dataset']}, layer {out['layer']!r} ({out['bits']} bits); "
          f"{out['queries']:,} test queries against {out['database']:,} training items, relevant = same label")  # fmt: skip
    header = ["mAP"] + [f"{m}@{k}" for k in ks for m in ("mAP", "P")]
    print(f"  {'(tie-aware)':<40} " + "  ".join(f"{h:>8}" for h in header))
    print(_row("binary codes, Hamming", out["binary"], ks))
    print(_row("float, same layer before the step, cosine", out["float"], ks))
    print(_row("ReLU baseline features, cosine", out["relu"], ks, out["relu_note"]))
    r, memory, speed = out["ratio"], out["bytes_per_item"], out["speed"]
    if r["binary_vs_float"] is not None:
        print(f"  binary / float mAP: {r['binary_vs_float']:.3f}")
    if r["binary_vs_relu"] is not None:
        print(f"  binary / ReLU mAP:  {r['binary_vs_relu']:.3f}")
    print(f"  bytes per item: packed {memory['packed']:g}, float32 {memory['float32']:g} "
          f"({memory['ratio']:.1f}x less; {padding_note(out['bits'])})")  # fmt: skip
    print(f"  exact top-{speed['k']} search, {speed['queries']:,} queries, {speed['threads']} thread(s), "
          f"{speed['clock']} clock: Hamming {speed['binary_qps']:,.0f} q/s ({speed['code_bytes']}-byte codes stored "
          f"in {speed['stored_bytes']}), float32 {speed['float_qps']:,.0f} q/s ({speed['ratio']:.1f}x)")  # fmt: skip
    if args.json is not None:
        print(f"  wrote {args.json}")
    return 0
