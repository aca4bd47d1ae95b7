"""The host-sync detector: what it refuses, what it lets through, and the callback that applies it."""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from event_lightning.callbacks.host_sync import HostSyncError, HostSyncGuard, forbid_host_syncs

x = torch.randn(16)
counts = torch.tensor([1, 2])

SYNCS = {
    "item": lambda: x.sum().item(),
    "bool": lambda: bool(x.sum() > 0),
    "if": lambda: 1 if (x > 0).any() else 0,
    "float": lambda: float(x.sum()),
    "int": lambda: int(x.argmax()),
    "index": lambda: [0, 1][x.argmax()],
    "tolist": lambda: x.tolist(),
    "cpu": lambda: x.cpu(),
    "numpy": lambda: x.numpy(),
    "np.asarray": lambda: np.asarray(x),
    "mask index": lambda: x[x > 0],
    "mask assign": lambda: x.clone().__setitem__(x > 0, 0.0),
    "nonzero": lambda: torch.nonzero(x > 0),
    "where(cond)": lambda: torch.where(x > 0),
    "unique": lambda: torch.unique(x),
    "masked_select": lambda: torch.masked_select(x, x > 0),
    "repeat_interleave": lambda: torch.repeat_interleave(counts),
    "bincount": lambda: torch.bincount((x > 0).long()),
    "equal": lambda: torch.equal(x, x),
    "torch.tensor": lambda: torch.tensor([1.0, 2.0]),
    "as_tensor(numpy)": lambda: torch.as_tensor(np.ones(3)),
    "from_numpy": lambda: torch.from_numpy(np.ones(3)),
}

FINE = {
    "arithmetic": lambda: (x * 2 + 1).exp().sum(),
    "where(cond, a, b)": lambda: torch.where(x > 0, x, 0.0),
    "long index": lambda: x[torch.arange(4)],
    "slice": lambda: x[2:5],
    "masked_fill": lambda: x.masked_fill(x > 0, 0.0),
    "repeat_interleave with size": lambda: torch.arange(2).repeat_interleave(counts, output_size=3),
    "argmax": lambda: x.argmax(),
    "zeros_like": lambda: torch.zeros_like(x),
    "shape": lambda: x.shape[0] + x.numel(),
}


@pytest.mark.parametrize("name", sorted(SYNCS))
def test_each_kind_of_host_sync_is_refused(name):
    with pytest.raises(HostSyncError, match="test_host_sync.py"), forbid_host_syncs("probe"):
        SYNCS[name]()


@pytest.mark.parametrize("name", sorted(FINE))
def test_device_side_operations_pass(name):
    with forbid_host_syncs("probe"):
        FINE[name]()


def test_syncs_are_allowed_again_after_the_block():
    with pytest.raises(HostSyncError), forbid_host_syncs("probe"):
        x.sum().item()
    assert isinstance(x.sum().item(), float)


def test_an_optimiser_step_inside_the_block_is_exempt():
    layer = torch.nn.Linear(3, 1)
    optimiser = torch.optim.Adam(layer.parameters())
    with forbid_host_syncs("probe"):
        for _ in range(2):  # the first step creates the host-side step counter
            layer(torch.ones(2, 3)).sum().backward()
            optimiser.step()
            optimiser.zero_grad()


class _Model(pl.LightningModule):
    def __init__(self, sync_in_step: int | None = None) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 2)
        self.sync_in_step = sync_in_step
        self.steps = 0

    def training_step(self, batch, batch_idx):
        inputs, labels = batch
        loss = torch.nn.functional.cross_entropy(self.layer(inputs), labels)
        self.log("train/loss", loss, on_step=True, on_epoch=True)
        if self.steps == self.sync_in_step:
            loss.item()
        self.steps += 1
        return loss

    def validation_step(self, batch, batch_idx):
        inputs, labels = batch
        self.log("val/loss", torch.nn.functional.cross_entropy(self.layer(inputs), labels))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters())


def _fit(model: pl.LightningModule, *callbacks: pl.Callback) -> None:
    data = TensorDataset(torch.randn(40, 4), torch.randint(0, 2, (40,)))
    trainer = pl.Trainer(
        max_epochs=1,
        limit_train_batches=5,
        limit_val_batches=2,
        callbacks=list(callbacks),
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, DataLoader(data, batch_size=8), DataLoader(data, batch_size=8))


def test_guard_checks_the_first_steps_and_then_lets_the_run_go():
    _fit(_Model(), HostSyncGuard(check_steps=2))
    with pytest.raises(HostSyncError, match=r"_Model.training_step: Tensor.item\(\)"):
        _fit(_Model(sync_in_step=1), HostSyncGuard(check_steps=2))
    _fit(_Model(sync_in_step=3), HostSyncGuard(check_steps=2))  # after the checked steps: unwrapped


def test_guard_checks_the_per_step_hooks_of_event_lightning_callbacks():
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        outputs["loss"].item()

    ours = type("SyncingCallback", (pl.Callback,), {"on_train_batch_end": on_train_batch_end})
    ours.__module__ = "event_lightning.callbacks.example"
    theirs = type("TheirCallback", (pl.Callback,), {"on_train_batch_end": on_train_batch_end})
    inherited = type("InheritingCallback", (ours,), {})
    _fit(_Model(), HostSyncGuard(), theirs())  # other libraries' callbacks are not ours to fix
    with pytest.raises(HostSyncError, match="SyncingCallback.on_train_batch_end"):
        _fit(_Model(), HostSyncGuard(), ours())
    with pytest.raises(HostSyncError, match="InheritingCallback.on_train_batch_end"):
        _fit(_Model(), HostSyncGuard(), inherited())


def test_guard_rejects_a_bad_setting():
    with pytest.raises(ValueError, match="check_steps"):
        HostSyncGuard(check_steps=0)
