"""The training engine: the schedule of docs/method.md, one epoch at a time, with
checkpoints after every epoch, single-process or DDP (launched by torchrun)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from ..errors import TrainingDiverged, UserError
from ..hashnet import HashNetSigmoid
from ..penalty import abr_layers, add_growth_grad_, binary_loss, clamp_slopes_, param_groups, set_lr_
from ..schedule import BinarizationSchedule
from ..stats import binarization_stats, mean_slope
from ..steps import binarize, binary_layers, freeze
from .checkpoint import load_model_state, read_checkpoint, restore_training, save_checkpoint
from .datasets import DatasetInfo, make_loader
from .distributed import DistInfo
from .evaluate import evaluate, input_format, to_device
from .phases import frozen_count, growth_at, lr_at, phase_of


class Trainer:
    """Trains ``model`` under ``cfg`` and checkpoints to ``out/checkpoint.safetensors``.

    ``info`` (the dataset's registry entry) sets the loader policy and the reported top-k.
    ``callbacks`` get ``on_step_end(trainer)`` and ``on_epoch_end(trainer, metrics)``.
    """

    def __init__(
        self, cfg, model, train_ds, test_ds, out: Path, device, distinfo: DistInfo, info: DatasetInfo, callbacks=()
    ):
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)  # a no-op for non-4-D weights
        self.cfg, self.model, self.out, self.device, self.dist = cfg, model.to(device), Path(out), device, distinfo
        self.input_format = input_format(model)
        self.train_ds, self.test_ds, self.callbacks, self.info = train_ds, test_ds, list(callbacks), info
        self.net = model
        if distinfo.world > 1:
            ids = [device.index] if device.type == "cuda" else None
            # Parameters leave the graph mid-run: the slopes once the adaptive schedule's
            # surrogate takes over, and all before a frozen step that passes no gradient.
            unused = bool(binary_layers(model))
            self.net = nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=unused)
        self.opt = torch.optim.SGD(
            param_groups(model, cfg.lr, cfg.weight_decay, cfg.slope_lr_mult), lr=cfg.lr, momentum=cfg.momentum
        )
        self.test_loader = make_loader(test_ds, info, cfg.batch_size, device, workers=cfg.workers)
        self.epoch = 0  # epochs completed
        self.step = 0
        self.steps_per_epoch = math.ceil(len(train_ds) / distinfo.world / cfg.batch_size)
        self.last_loss = float("nan")
        self.checkpoint = self.out / "checkpoint.safetensors"
        self.amp = cfg.amp and device.type == "cuda"
        # Seconds this run spent in the processes before a resume (from its checkpoint),
        # and when this one began: a resumed run's wall time counts both.
        self.earlier_s, self._began = 0.0, time.perf_counter()
        self._binary, self._frozen = binary_layers(model), []
        self.total_steps = cfg.total_epochs * self.steps_per_epoch
        for m in model.modules():  # HashNet's beta follows the same budget of steps
            if isinstance(m, HashNetSigmoid):
                m.total_steps = self.total_steps
        self.binarization = None  # the adaptive schedule, when there are ABRs to drive
        if cfg.schedule == "adaptive" and any(True for _ in abr_layers(model)):
            growth = {} if cfg.growth is None else {"growth": cfg.growth}  # None: the schedule's default
            self.binarization = BinarizationSchedule(
                model, self.opt, self.total_steps, kind=cfg.growth_kind, binarize_at=cfg.binarize_at,
                freeze_at=cfg.freeze_at, saturate=cfg.saturate, surrogate=cfg.surrogate,
                window_share=cfg.window_share, learn_window=cfg.learn_window, rounded=cfg.rounded and cfg.surrogate,
                held_out=_held_out(train_ds),
                **growth,
            )  # fmt: skip

    # -- schedule ---------------------------------------------------------------
    @property
    def phase(self) -> int:
        return phase_of(self.cfg, self.epoch)

    @property
    def current_lr(self) -> float:
        return lr_at(self.cfg, self.epoch, self.steps_per_epoch)

    @property
    def current_growth(self) -> float:
        if self.binarization is not None:
            return self.binarization.current_growth
        return growth_at(self.cfg, self.epoch, self.steps_per_epoch)

    @property
    def frozen(self) -> int:
        """How many binary layers, first to last, compute their step now."""
        return self.binarization.frozen_count() if self.binarization is not None else len(self._frozen)

    def epoch_float(self) -> float:
        return self.step / max(self.steps_per_epoch, 1)

    def _apply_frozen(self) -> None:
        if self.binarization is not None:
            return  # the adaptive schedule freezes as it goes
        # Phase 3: before its j-th epoch the first ceil((j + 1) L / frozen_epochs) of the
        # L binary layers compute their steps; after the last epoch, all of them. It is a
        # function of the epoch alone, so a resumed run rebuilds it.
        want = frozen_count(self.cfg, self.epoch, len(self._binary))
        for name in self._binary[len(self._frozen) : want]:
            self._frozen.extend(freeze(self.model, [name]))

    # -- checkpoints --------------------------------------------------------------
    def save(self) -> None:
        if not self.dist.main:
            return
        meta = {"config": json.loads(self.cfg.to_json()), "epoch": self.epoch, "step": self.step, "frozen": self.frozen,
                "elapsed_s": self.earlier_s + time.perf_counter() - self._began}  # fmt: skip
        if self.binarization is not None:
            meta["binarization"] = self.binarization.state_dict()
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
        self.earlier_s = float(meta.get("elapsed_s", 0.0))  # (absent from older checkpoints)
        if self.binarization is not None:
            self.binarization.load_state_dict(meta["binarization"])
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
        return make_loader(self.train_ds, self.info, self.cfg.batch_size, self.device, workers=self.cfg.workers,
                           sampler=sampler, generator=gen)  # fmt: skip

    def fit(self, progress=None) -> list[dict]:
        history = []
        while self.epoch < self.cfg.total_epochs:
            history.append(self.train_epoch(progress))
        self._apply_frozen()  # also when a resume found the run complete
        return history

    def train_epoch(self, progress=None) -> dict:
        cfg, model = self.cfg, self.model
        set_lr_(self.opt, self.current_lr)
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
            if self.binarization is None:  # else the schedule's optimizer hooks do both
                add_growth_grad_(model, growth, cfg.growth_kind)  # = growth_penalty in the loss
            self.opt.step()
            if self.binarization is None:
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
            "frozen": self.frozen,
            **({"stage": self.binarization.stage} if self.binarization is not None else {}),
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
        out = {f"test_acc{'' if k == 1 else f'_top{k}'}": v for k, v in self.accuracy(self.model).items()}
        names = binary_layers(self.model)
        if names:
            stepped = binarize(self.model, "all")
            out.update({f"test_acc_binary{'' if k == 1 else f'_top{k}'}": v for k, v in self.accuracy(stepped).items()})
            stats = binarization_stats(self.model, self.test_loader, max_batches=8)
            out["layers"] = {n: vars(s) for n, s in stats.items()}
            out["binary_share"] = sum(s.binary * s.numel for s in stats.values()) / max(
                sum(s.numel for s in stats.values()), 1
            )
            out["slope_mean"] = mean_slope(self.model)
        return out

    def accuracy(self, model: nn.Module) -> dict:
        """Top-k test accuracies of ``model`` (the training form, or a deployed copy)."""
        return evaluate(model, self.test_loader, self.device, self.info.topk)


def _held_out(ds, n: int = 256) -> torch.Tensor:
    """The first ``n`` training inputs: where the adaptive schedule measures how far each
    layer's slopes must rise (training data, so the test set stays unseen)."""
    return torch.stack([ds[i][0] for i in range(min(n, len(ds)))])
