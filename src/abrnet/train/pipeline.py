"""One training run end to end: data, model, the two phases, the optional ReLU
baseline, deploy, final evaluation and ``report.json``. The CLI's ``train`` and
``compare`` both call :func:`train_run`."""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path

import torch

from ..errors import UserError
from ..stats import binarization_stats, non_binary_outputs, summary
from ..steps import binarize, binary_layers
from .checkpoint import atomic_write_text, save_checkpoint
from .config import TrainConfig
from .distributed import init_distributed, resolve_device
from .dynamics import Callback, DynamicsRecorder
from .engine import Trainer
from .run import build_model, read_config

REPORT_SCHEMA = "abrnet-report-1"


class TensorBoard(Callback):
    def __init__(self, logdir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(logdir))

    def on_epoch_end(self, trainer, metrics: dict) -> None:
        for key, value in metrics.items():
            if isinstance(value, (int, float)) and key != "epoch":
                self.writer.add_scalar(key, value, metrics["epoch"])
        for name, layer in metrics.get("layers", {}).items():
            for key in ("slope_mean", "between", "changed"):
                if layer.get(key) is not None:
                    self.writer.add_scalar(f"layers/{name}/{key}", layer[key], metrics["epoch"])
        self.writer.flush()


def prepare_out(out: Path, resume: bool) -> None:
    """Create ``out`` and prove it is writable before any work is done."""
    if resume:
        if not (out / "config.json").exists():
            raise UserError(f"--resume: {out} holds no run to resume (no config.json)")
    elif (out / "config.json").exists():
        raise UserError(f"{out} already holds a run: pass --resume to continue it, or choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise UserError(f"cannot write to --out {out} ({err.strerror or err})") from None


def _truncate_jsonl(path: Path, key: str, last: float) -> None:
    # After a kill, lines written past the last checkpoint are replayed: drop them.
    if path.exists():
        keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)[key] <= last]
        atomic_write_text(path, "".join(k + "\n" for k in keep))


def _train_one(cfg, out: Path, data, device, distinfo, resume: bool, progress, label: str, quiet: bool):
    train, test, info = data
    model = build_model(cfg, info.num_classes, info.input_shape)
    callbacks = []
    if distinfo.main:
        callbacks.append(TensorBoard(out / "tb"))
        held = next(iter(torch.utils.data.DataLoader(test, batch_size=256)))
        every = cfg.log_every or max(1, -(-len(train) // (cfg.batch_size * distinfo.world)) // 30)
        callbacks.append(DynamicsRecorder(out / "dynamics.jsonl", (held[0], held[1]), every))
    trainer = Trainer(cfg, model, train, test, out, device, distinfo, info, callbacks)
    if resume and trainer.resume() and distinfo.main:
        _truncate_jsonl(out / "metrics.jsonl", "epoch", trainer.epoch)
        _truncate_jsonl(out / "dynamics.jsonl", "step", trainer.step)
        for cb in callbacks:
            cb.on_resume(trainer)
        if not quiet:
            print(f"{label}: resumed at epoch {trainer.epoch}/{cfg.total_epochs}, step {trainer.step}")
    elif distinfo.main:
        for name in ("metrics.jsonl", "dynamics.jsonl"):
            (out / name).unlink(missing_ok=True)
    trainer.fit(progress(label) if progress else None)
    return trainer


def train_run(cfg: TrainConfig | None, out: Path, *, resume: bool = False, progress=None, quiet=False, device=None):
    """Train (or resume) the run in ``out``; returns the report dict on the main rank."""
    out = Path(out)
    if resume:
        saved = read_config(out)
        # Only where it runs may change on resume; the maths must not.
        cfg = dataclasses.replace(saved, device=device or saved.device, workers=cfg.workers if cfg else saved.workers)
    started = time.perf_counter()
    dev = resolve_device(cfg.device)
    distinfo = init_distributed(dev.type)
    dev = resolve_device(cfg.device, distinfo.local_rank)
    fresh = distinfo.main and not resume and not out.exists()
    if distinfo.main:
        prepare_out(out, resume)  # an unwritable --out fails before any work
    try:
        from .data import load_dataset

        data = load_dataset(cfg.dataset, cfg.data_dir, download=cfg.download, train_augment=True, limit=cfg.limit)
        info = data[2]
        if distinfo.main:
            atomic_write_text(out / "config.json", cfg.to_json())
            meta = {"num_classes": info.num_classes, "input_shape": list(info.input_shape),
                    "class_names": list(info.class_names), "train_size": len(data[0]), "test_size": len(data[1])}  # fmt: skip
            atomic_write_text(out / "dataset.json", json.dumps(meta, indent=2))
        if distinfo.world > 1:
            torch.distributed.barrier()
        trainer = _train_one(cfg, out, data, dev, distinfo, resume, progress, cfg.method, quiet)
    except BaseException:
        # A run that fails before its first checkpoint leaves no half-made directory.
        if fresh and not (out / "checkpoint.safetensors").exists():
            shutil.rmtree(out, ignore_errors=True)
        raise
    baseline = None
    if cfg.baseline:
        base_cfg = dataclasses.replace(cfg, method="relu", baseline=False)
        base_out = out / "baseline"
        if distinfo.main:
            base_out.mkdir(exist_ok=True)
            atomic_write_text(base_out / "config.json", base_cfg.to_json())
        if distinfo.world > 1:
            torch.distributed.barrier()
        baseline = _train_one(base_cfg, base_out, data, dev, distinfo, resume, progress, "relu", quiet)
    if not distinfo.main:
        return None
    # a resumed run's wall time includes what it spent before the resume
    earlier = trainer.earlier_s + (baseline.earlier_s if baseline is not None else 0.0)
    return finish(cfg, out, trainer, baseline, data, time.perf_counter() - started + earlier)


def _save_model(path: Path, model, cfg: TrainConfig, **extra) -> None:
    meta = {"config": json.loads(cfg.to_json()), **extra}
    try:
        save_checkpoint(path, model, metadata=meta, rng=False)
    except OSError as err:
        raise UserError(f"could not write {path} ({err.strerror or err})") from None


def finish(cfg, out: Path, trainer, baseline, data, wall: float) -> dict:
    """Deploy, evaluate exactly, and write the models and ``report.json``."""
    train, test, info = data
    model = trainer.model.eval()
    _save_model(out / "model.safetensors", model, cfg, form="train", frozen=trainer.frozen)
    acc = {}
    method_acc = trainer.accuracy(model)
    acc["train_form"] = method_acc[1]
    if cfg.method == "abr":
        acc["abr"] = method_acc[1]
    report = {"schema": REPORT_SCHEMA, "recipe": cfg.recipe, "dataset": cfg.dataset, "model": cfg.model,
              "method": cfg.method, "binarize": cfg.binarize, "epochs": cfg.total_epochs}  # fmt: skip
    if binary_layers(model):
        deployed = binarize(model, "all")
        _save_model(out / "deployed.safetensors", deployed, cfg, form="deployed")
        dep_acc = trainer.accuracy(deployed)
        acc["binary"] = dep_acc[1]
        stats = binarization_stats(model, trainer.test_loader)
        report["layers"] = {n: vars(s) for n, s in stats.items()}
        check = binarization_stats(deployed, trainer.test_loader)
        report["deployed_binary"] = non_binary_outputs(check)
        report["memory"] = summary(deployed.cpu(), info.input_shape).to_dict()
        deployed.to(trainer.device)
        if 5 in method_acc:
            report["top5"] = {"train_form": method_acc[5], "binary": dep_acc[5]}
    if baseline is not None:
        base_acc = baseline.accuracy(baseline.model.eval())
        acc["relu"] = base_acc[1]
        _save_model(out / "baseline" / "model.safetensors", baseline.model, baseline.cfg, form="train")
        if 5 in base_acc:
            report.setdefault("top5", {})["relu"] = base_acc[5]
    report["accuracy"] = acc
    report["wall_time_s"] = wall
    report["test_size"] = len(test)
    report["config"] = json.loads(cfg.to_json())
    atomic_write_text(out / "report.json", json.dumps(report, indent=2))
    return report


def _slope_cell(layer: dict) -> str:
    # A frozen layer computes its step: its slope takes no part, and would only mislead.
    if layer.get("frozen"):
        return "frozen"
    if layer["slope_mean"] is None:
        return "-"
    return f"{layer['slope_min']:.3g}/{layer['slope_mean']:.3g}/{layer['slope_max']:.3g}"


def _threshold_cell(layer: dict) -> str:
    if "threshold" not in layer:  # a report written before the column
        return "-"
    t = layer["threshold"]
    return "per channel" if t is None else f"{t:.4g}"


def format_report(report: dict) -> str:
    acc = report["accuracy"]
    lines = [f"== {report['recipe']}: {report['model']} on {report['dataset']}, method {report['method']}, "
             f"binarize {report['binarize']} ({report['test_size']} test items)"]  # fmt: skip
    head = f"{'network':<34} {'test accuracy':>14}"
    rows = [("training form (" + report["method"] + ")", acc.get("train_form"))]
    if "binary" in acc:
        rows.append(("deployed step network (exact 0/1)", acc["binary"]))
    if "relu" in acc:
        rows.append(("ReLU baseline", acc["relu"]))
    lines += [head, "-" * len(head)] + [f"{n:<34} {v:>14.4f}" for n, v in rows]
    for name, t5 in report.get("top5", {}).items():
        lines.append(f"top-5 {name:<28} {t5:>14.4f}")
    if "layers" in report:
        lines.append("")
        lines.append(f"{'layer':<22} {'slope min/mean/max':>20} {'fires at x >':>12} {'exact 0':>8} "
                     f"{'exact 1':>8} {'between':>8}")  # fmt: skip
        for name, s in report["layers"].items():
            lines.append(f"{name[:22]:<22} {_slope_cell(s):>20} {_threshold_cell(s):>12} {s['zero']:>8.4f} "
                         f"{s['one']:>8.4f} {s['between']:>8.4f}")  # fmt: skip
        d = report["deployed_binary"]
        lines.append(f"deployed: {d['layers']} step layers, {d['non_binary_outputs']} of "
                     f"{d['outputs_checked']:,} outputs not exactly 0/1")  # fmt: skip
        m = report["memory"]
        lines.append(f"hidden representations: {m['hidden_float32_bits']:,} bits float32 -> "
                     f"{m['hidden_binary_bits']:,} bits deployed per example ({m['ratio']:.1f}x)")  # fmt: skip
    lines.append(f"wall time {report['wall_time_s']:.1f} s")
    return "\n".join(lines)
