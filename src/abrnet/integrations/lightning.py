"""A PyTorch Lightning callback that runs :class:`abrnet.BinarizationSchedule`.

::

    from abrnet.integrations.lightning import Binarization

    trainer = lightning.Trainer(max_epochs=10, callbacks=[Binarization()])
    trainer.fit(module, loader)                 # module's network converted by abrnet.convert
    deployed = abrnet.binarize(module)          # exactly 0/1, equal to the trained module

Lightning's ``optimizer.step(closure)`` runs the backward pass inside ``step()``, after
the optimizer's pre-step hooks, so the callback calls the schedule's per-step work from
Lightning's own hooks instead: :meth:`before_step` once the gradients exist
(``on_before_optimizer_step``), :meth:`after_step` once a step was taken. Its state
travels in Lightning's checkpoints, so ``ckpt_path=`` resumes the schedule too.

Under DDP, use ``strategy="ddp_find_unused_parameters_true"``: the slopes take no
gradient once the surrogate takes over, and DDP must be told that parameters may drop out.
"""

from __future__ import annotations

import lightning as L
import torch

from ..schedule import BinarizationSchedule


class Binarization(L.Callback):
    """Drive every ABR of the LightningModule to its exact step by the last training step.

    Args:
        total_steps: the budget of optimizer steps; default Lightning's
            ``trainer.estimated_stepping_batches`` (from ``max_epochs``/``max_steps``).
        held_out: inputs on which the end slopes are measured; default the inputs of the
            first training batch (its first element when the batch is a tuple or list).
        optimizer: which of ``configure_optimizers``' optimizers to follow.
        **schedule_kwargs: passed to :class:`~abrnet.BinarizationSchedule`
            (``binarize_at``, ``freeze_at``, ``saturate``, ``growth``...).
    """

    def __init__(self, total_steps: int | None = None, held_out: torch.Tensor | None = None,
                 optimizer: int = 0, **schedule_kwargs) -> None:  # fmt: skip
        self.total_steps, self.held_out, self.optimizer_index = total_steps, held_out, optimizer
        self.schedule_kwargs = schedule_kwargs
        self.schedule: BinarizationSchedule | None = None
        self._state: dict | None = None  # restored from a checkpoint before fit starts
        self._offset: int | None = None  # trainer.global_step - schedule.step_count

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        total = self.total_steps or int(trainer.estimated_stepping_batches)
        self.schedule = BinarizationSchedule(
            pl_module, trainer.optimizers[self.optimizer_index], total, held_out=self.held_out,
            hook_optimizer=False, **self.schedule_kwargs,
        )  # fmt: skip
        if self._state is not None:
            self.schedule.load_state_dict(self._state)
        self._offset = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.schedule is None:
            return
        if self._offset is None:  # the loops are restored by now, so global_step is right
            self._offset = trainer.global_step - self.schedule.step_count
        if self.schedule.held_out is None:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            if isinstance(x, torch.Tensor):
                self.schedule.held_out = x.detach()

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if self.schedule is not None and optimizer is self.schedule.optimizer:
            self.schedule.before_step()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # One after_step per optimizer step taken (not per batch, with accumulation).
        while self.schedule is not None and self.schedule.step_count + self._offset < trainer.global_step:
            self.schedule.after_step()

    def on_fit_end(self, trainer, pl_module) -> None:
        if self.schedule is not None:
            self.schedule.remove()

    def state_dict(self) -> dict:
        return self.schedule.state_dict() if self.schedule is not None else dict(self._state or {})

    def load_state_dict(self, state_dict: dict) -> None:
        self._state = dict(state_dict) if state_dict else None
