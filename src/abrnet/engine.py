"""The training engine: the two-phase schedule of METHOD.md, one epoch at a time,
with checkpoints after every epoch, single-process or DDP (launched by torchrun)."""

from __future__ import annotations

import json
import math
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler

from .checkpoint import load_model_state, read_checkpoint, restore_training, save_checkpoint
from .config import TrainConfig
from .convert import binarize, binary_layers, freeze
from .errors import TrainingDiverged, UserError
from .layers import ABR
from .penalty import add_growth_grad_, binary_loss, clamp_slopes_, param_groups
from .stats import binarization_stats


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str) -> DistInfo:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; gloo on CPU, nccl on GPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return info


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"--device {name}: no CUDA device is available here; use --device cpu")
        if name == "cuda":
            name = f"cuda:{local_rank}"
    elif name not in ("cpu", "mps"):
        raise UserError(f"unknown --device {name!r}: use auto, cpu, cuda or cuda:N")
    return torch.device(name)


def loader(ds: Dataset, cfg: TrainConfig, device: torch.device, *, sampler=None, generator=None, shuffle=False):
    workers = cfg.workers
    if workers < 0:
        in_memory = cfg.dataset != "imagenet"
        workers = 0 if (in_memory and device.type == "cpu") else min(8, os.cpu_count() or 1)
    return DataLoader(
        ds,
        batch_size=cfg.batch_size,
        sampler=sampler,
        shuffle=shuffle if sampler is None else None,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        generator=generator,
        persistent_workers=False,
    )


def phase_of(cfg: TrainConfig, epoch: int) -> int:
    """The phase that epoch ``epoch`` (0-based) belongs to: 1 train, 2 fine-tune, 3 frozen."""
    if epoch < cfg.epochs:
        return 1
    return 2 if epoch < cfg.epochs + cfg.finetune_epochs else 3


def frozen_count(cfg: TrainConfig, epoch: int, layers: int) -> int:
    """How many of ``layers`` binary layers are frozen while epoch ``epoch`` trains (and
    after training, when ``epoch`` is the total)."""
    j = epoch - cfg.epochs - cfg.finetune_epochs
    if cfg.frozen_epochs == 0 or j < 0:
        return 0
    return min(layers, math.ceil((min(j, cfg.frozen_epochs - 1) + 1) * layers / cfg.frozen_epochs))


def input_format(model: nn.Module) -> torch.memory_format:
    """``channels_last`` when the model's conv weights are (TrainConfig.channels_last),
    so inputs match them; otherwise the input keeps its layout."""
    w = next((p for p in model.parameters() if p.dim() == 4 and p.shape[1] * p.shape[2] * p.shape[3] > 1), None)
    if w is not None and w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous():
        return torch.channels_last
    return torch.preserve_format


def to_device(x: torch.Tensor, device: torch.device, fmt: torch.memory_format) -> torch.Tensor:
    if x.dim() == 4:
        return x.to(device, non_blocking=True, memory_format=fmt)
    return x.to(device, non_blocking=True)


@torch.no_grad()
def evaluate(model: nn.Module, data: DataLoader, device: torch.device, topk: tuple[int, ...] = (1,)) -> dict:
    """Accuracy (top-k) of ``model`` on ``data``, in eval mode."""
    was_training = model.training
    model.eval()
    correct = dict.fromkeys(topk, 0)
    n = 0
    fmt = input_format(model)
    for x, y in data:
        x, y = to_device(x, device, fmt), y.to(device, non_blocking=True)
        out = model(x)
        top = out.topk(max(topk), dim=1).indices
        for k in topk:
            correct[k] += (top[:, :k] == y[:, None]).any(1).sum().item()
        n += len(y)
    model.train(was_training)
    return {k: correct[k] / max(n, 1) for k in topk}


class Trainer:
    """Trains ``model`` under ``cfg`` and checkpoints to ``out/checkpoint.safetensors``.

    ``callbacks`` get ``on_step_end(trainer)`` and ``on_epoch_end(trainer, metrics)``.
    """

    def __init__(self, cfg, model, train_ds, test_ds, out: Path, device, distinfo: DistInfo, callbacks=(), topk=(1,)):
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)  # a no-op for non-4-D weights
        self.cfg, self.model, self.out, self.device, self.dist = cfg, model.to(device), Path(out), device, distinfo
        self.input_format = input_format(model)
        self.train_ds, self.test_ds, self.callbacks, self.topk = train_ds, test_ds, list(callbacks), topk
        self.net = model
        if distinfo.world > 1:
            ids = [device.index] if device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        self.opt = torch.optim.SGD(
            param_groups(model, cfg.lr, cfg.weight_decay, cfg.slope_lr_mult), lr=cfg.lr, momentum=cfg.momentum
        )
        self.test_loader = loader(test_ds, cfg, device)
        self.epoch = 0  # epochs completed
        self.step = 0
        self.steps_per_epoch = math.ceil(len(train_ds) / distinfo.world / cfg.batch_size)
        self.last_loss = float("nan")
        self.checkpoint = self.out / "checkpoint.safetensors"
        self.amp = cfg.amp and device.type == "cuda"
        self._binary, self._frozen = binary_layers(model), []

    # -- schedule ---------------------------------------------------------------
    @property
    def phase(self) -> int:
        return phase_of(self.cfg, self.epoch)

    @property
    def current_lr(self) -> float:
        cfg = self.cfg
        if self.phase == 3:
            return cfg.frozen_lr
        if self.phase == 2:
            return cfg.finetune_lr
        return cfg.lr * cfg.lr_gamma ** sum(self.epoch >= s for s in cfg.lr_steps)

    @property
    def current_growth(self) -> float:
        return self.cfg.growth if self.phase == 1 else self.cfg.finetune_growth

    def epoch_float(self) -> float:
        return self.step / max(self.steps_per_epoch, 1)

    def _apply_frozen(self) -> None:
        # Phase 3: before its j-th epoch the first ceil((j + 1) L / frozen_epochs) of the
        # L binary layers compute their steps; after the last epoch, all of them. It is a
        # function of the epoch alone, so a resumed run rebuilds it.
        want = frozen_count(self.cfg, self.epoch, len(self._binary))
        for name in self._binary[len(self._frozen) : want]:
            self._frozen.extend(freeze(self.model, [name]))

    def _apply_lr(self) -> None:
        for group in self.opt.param_groups:
            mult = self.cfg.slope_lr_mult if group.get("name") == "slopes" else 1.0
            group["lr"] = self.current_lr * mult

    # -- checkpoints --------------------------------------------------------------
    def save(self) -> None:
        if not self.dist.main:
            return
        meta = {"config": json.loads(self.cfg.to_json()), "epoch": self.epoch, "step": self.step}
        try:
            save_checkpoint(self.checkpoint, self.model, metadata=meta, optimizer=self.opt)
        except OSError as err:
            raise UserError(
                f"could not write {self.checkpoint} ({err.strerror or err}); the previous checkpoint is intact"
            ) from None

    def resume(self) -> bool:
        """Load the last checkpoint if there is one; True when one was loaded."""
        if not self.checkpoint.exists():
            return False
        tensors, meta = read_checkpoint(self.checkpoint)
        load_model_state(self.model, tensors, self.checkpoint)
        try:
            restore_training(self.opt, tensors, meta)
        except (ValueError, KeyError) as err:
            raise UserError(f"{self.checkpoint} has an optimizer state for another model ({err})") from None
        self.epoch, self.step = int(meta["epoch"]), int(meta["step"])
        return True

    # -- training -----------------------------------------------------------------
    def _epoch_loader(self) -> DataLoader:
        # The order depends only on (seed, epoch), so a resumed run sees the same batches.
        gen = torch.Generator().manual_seed(self.cfg.seed * 100_003 + self.epoch)
        if self.dist.world > 1:
            sampler = DistributedSampler(self.train_ds, self.dist.world, self.dist.rank, seed=self.cfg.seed)
            sampler.set_epoch(self.epoch)
        else:
            sampler = RandomSampler(self.train_ds, generator=gen)
        return loader(self.train_ds, self.cfg, self.device, sampler=sampler, generator=gen)

    def fit(self, progress=None) -> list[dict]:
        history = []
        while self.epoch < self.cfg.total_epochs:
            history.append(self.train_epoch(progress))
        self._apply_frozen()  # also when a resume found the run complete
        return history

    def train_epoch(self, progress=None) -> dict:
        cfg, model = self.cfg, self.model
        self._apply_lr()
        self._apply_frozen()
        lr, growth = self.current_lr, self.current_growth
        model.train()
        started = time.perf_counter()
        total_loss = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device)
        seen = 0
        bar = progress(self) if progress else None
        for x, y in self._epoch_loader():
            x, y = to_device(x, self.device, self.input_format), y.to(self.device, non_blocking=True)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                out = self.net(x)
                task = nn.functional.cross_entropy(out, y)
            loss = task.float() + binary_loss(model).to(self.device)
            self._check_finite(loss)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            add_growth_grad_(model, growth, cfg.growth_kind)  # = growth_penalty in the loss
            self.opt.step()
            clamp_slopes_(model)
            self.step += 1
            self.last_loss = task.item()
            total_loss += task.detach().float() * len(y)
            correct += (out.argmax(1) == y).sum()
            seen += len(y)
            for cb in self.callbacks:
                cb.on_step_end(self)
            if bar is not None:
                bar.update(self, loss=self.last_loss, acc=correct.item() / seen)
        if bar is not None:
            bar.close()
        self.epoch += 1
        metrics = {
            "epoch": self.epoch,
            "phase": phase_of(cfg, self.epoch - 1),
            "step": self.step,
            "lr": lr,
            "growth": growth,
            "train_loss": total_loss.item() / max(seen, 1),  # the task loss, without penalties
            "train_acc": correct.item() / max(seen, 1),
            "epoch_time": time.perf_counter() - started,
        }
        metrics.update(self.evaluate_all() if self.dist.main else {})
        for cb in self.callbacks:
            cb.on_epoch_end(self, metrics)
        if self.dist.main:
            with (self.out / "metrics.jsonl").open("a") as f:
                f.write(json.dumps(metrics) + "\n")
        _fault_point(self.epoch)
        self.save()
        if self.dist.world > 1:
            dist.barrier()
        return metrics

    def _check_finite(self, loss: torch.Tensor) -> None:
        bad = torch.tensor(0.0 if torch.isfinite(loss) else 1.0, device=self.device)
        if self.dist.world > 1:
            dist.all_reduce(bad)  # every rank stops together
        if bad.item():
            where = f"step {self.step + 1} (epoch {self.epoch + 1})"
            kept = f"the last good checkpoint (epoch {self.epoch}) is kept in {self.checkpoint}"
            if not self.checkpoint.exists():
                kept = "no checkpoint had been written yet"
            raise TrainingDiverged(
                f"loss became {loss.item()} at {where}; stopped, {kept}. Try a smaller --lr or --growth"
            )

    def evaluate_all(self) -> dict:
        """Test accuracy of the training form and of the stepped (deployed) network,
        plus the per-layer binarization state."""
        out = {f"test_acc{'' if k == 1 else f'_top{k}'}": v for k, v in self._eval(self.model).items()}
        names = binary_layers(self.model)
        if names:
            stepped = binarize(self.model, "all")
            out.update({f"test_acc_binary{'' if k == 1 else f'_top{k}'}": v for k, v in self._eval(stepped).items()})
            stats = binarization_stats(self.model, self.test_loader, max_batches=8)
            out["layers"] = {n: vars(s) for n, s in stats.items()}
            out["binary_share"] = sum(s.binary * s.numel for s in stats.values()) / max(
                sum(s.numel for s in stats.values()), 1
            )
            out["slope_mean"] = mean_slope(self.model)
        return out

    def _eval(self, model: nn.Module) -> dict:
        return evaluate(model, self.test_loader, self.device, self.topk)


def _fault_point(epoch: int) -> None:
    # For the resume test: die like a killed job, at the worst moment (the epoch's
    # metrics are written, its checkpoint is not).
    if os.environ.get("ABRNET_KILL_AFTER_EPOCH") == str(epoch):
        os.kill(os.getpid(), signal.SIGKILL)


def mean_slope(model: nn.Module) -> float | None:
    slopes = [m.effective_slope().detach().flatten() for m in model.modules() if isinstance(m, ABR)]
    return torch.cat(slopes).mean().item() if slopes else None
