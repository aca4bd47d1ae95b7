"""A non-finite loss stops fit naming the step, and last.ckpt keeps the last good state."""

from __future__ import annotations

import pytest
import torch

from event_lightning.callbacks.guards import NonFiniteLossError, NonFiniteLossGuard
from event_lightning.cli import main
from event_lightning.models.lif_classifier import LIFClassifier


@pytest.fixture
def nan_from_step_5(monkeypatch):
    original = LIFClassifier.training_step

    def diverging(self, batch, batch_idx):
        loss = original(self, batch, batch_idx)
        return loss * float("nan") if self.global_step >= 5 else loss

    monkeypatch.setattr(LIFClassifier, "training_step", diverging)


@pytest.mark.parametrize("check_every", ["1", "100"])
def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(
    tmp_path, tiny_digits, quick, nan_from_step_5, check_every
):
    args = quick.args(tmp_path / "runs", tiny_digits, "--trainer.max_epochs", "3")
    with pytest.raises(NonFiniteLossError, match=r"global step 5 \(epoch 1, batch 1\)") as error:
        main(["fit", *args, "--nonfinite_guard.check_every_n_steps", check_every])
    last_path = tmp_path / "runs" / "quickstart" / "version_0" / "checkpoints" / "last.ckpt"
    assert str(last_path) in str(error.value)
    last = torch.load(last_path, weights_only=True)
    assert last["global_step"] == quick.steps_per_epoch and last["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values())


def test_guard_reads_the_logged_loss_of_manual_optimisation_models():
    guard = NonFiniteLossGuard(check_every_n_steps=1, loss_key="train/loss")

    class Trainer:  # the attributes the guard reads
        global_step, current_epoch, checkpoint_callbacks = 7, 2, []
        callback_metrics = {"train/loss_step": torch.tensor(float("inf"))}

    trainer = Trainer()
    guard.on_train_batch_start(trainer, None, None, 3)
    with pytest.raises(NonFiniteLossError, match=r"global step 7 \(epoch 2, batch 3\)"):
        guard.on_train_batch_end(trainer, None, None, None, 3)
    with pytest.raises(ValueError, match="check_every_n_steps"):
        NonFiniteLossGuard(check_every_n_steps=0)


def test_guard_steps_between_checks_never_read_the_device():
    """Batches between checks only queue device work; the check then names the first bad batch."""
    from event_lightning.callbacks.host_sync import forbid_host_syncs

    guard = NonFiniteLossGuard(check_every_n_steps=4)

    class Trainer:
        global_step, current_epoch, checkpoint_callbacks, world_size = 0, 1, [], 1

    trainer = Trainer()
    losses = [torch.tensor(0.5), torch.tensor(float("nan")), torch.tensor(float("inf")), torch.tensor(0.1)]
    for batch_idx, loss in enumerate(losses):
        trainer.global_step = 10 + batch_idx
        guard.on_train_batch_start(trainer, None, None, batch_idx)
        if batch_idx < 3:
            with forbid_host_syncs("NonFiniteLossGuard.on_train_batch_end"):
                guard.on_train_batch_end(trainer, None, loss, None, batch_idx)
        else:
            with pytest.raises(NonFiniteLossError, match=r"global step 11 \(epoch 1, batch 1\)"):
                guard.on_train_batch_end(trainer, None, loss, None, batch_idx)
