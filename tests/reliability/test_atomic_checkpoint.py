"""Checkpoint writes are atomic, and last.ckpt follows the step checkpoints of long epochs."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO

from event_lightning.callbacks.checkpoint import AtomicCheckpointIO, RunCheckpoint, partial_path
from event_lightning.cli import main


def test_a_write_that_fails_half_way_keeps_the_previous_last_ckpt(tmp_path, tiny_digits, quick, monkeypatch):
    original = torch.save

    def fail_after_epoch_0(checkpoint, handle, *args, **kwargs):
        original(checkpoint, handle, *args, **kwargs)
        if isinstance(checkpoint, dict) and checkpoint.get("global_step", 0) > quick.steps_per_epoch:
            # a full disk / a kill during the write: only half of the bytes reach the file
            handle.truncate(handle.tell() // 2)
            raise OSError(28, "No space left on device (injected)")

    monkeypatch.setattr(torch, "save", fail_after_epoch_0)
    with pytest.raises(OSError, match="injected"):
        main(["fit", *quick.args(tmp_path / "runs", tiny_digits, "--trainer.max_epochs", "2")])

    folder = tmp_path / "runs" / "quickstart" / "version_0" / "checkpoints"
    last = torch.load(folder / "last.ckpt", weights_only=True)
    assert last["global_step"] == quick.steps_per_epoch and last["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values())
    assert not list(folder.glob(".*")), "a partial file was left behind"
    assert sorted(p.name for p in folder.iterdir()) == ["epoch=0-step=4.ckpt", "last.ckpt"]


def test_last_ckpt_follows_every_n_train_steps_and_top_k_still_saves(tmp_path, tiny_digits, quick, monkeypatch):
    saved: list[tuple[str, int]] = []
    original = AtomicCheckpointIO.save_checkpoint

    def record(self, checkpoint, path, storage_options=None):
        saved.append((Path(path).name, checkpoint["global_step"]))
        original(self, checkpoint, path, storage_options)

    monkeypatch.setattr(AtomicCheckpointIO, "save_checkpoint", record)
    args = quick.args(tmp_path / "runs", tiny_digits, "--trainer.max_epochs", "1")
    main(["fit", *args, "--checkpoint.every_n_train_steps", "1"])

    # steps 1..3 inside the epoch; step 4 after validation, with the monitored top-k file first
    assert [step for name, step in saved if name == "last.ckpt"] == [1, 2, 3, 4]
    assert ("epoch=0-step=4.ckpt", 4) in saved
    folder = tmp_path / "runs" / "quickstart" / "version_0" / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["epoch=0-step=4.ckpt", "last.ckpt"]
    assert torch.load(folder / "last.ckpt", weights_only=True)["global_step"] == 4


def test_run_checkpoint_installs_the_atomic_writer_unless_the_user_chose_one(tmp_path):
    default = pl.Trainer(logger=False, callbacks=[RunCheckpoint(dirpath=tmp_path)], enable_progress_bar=False)
    default.callbacks[-1].setup(default, pl.LightningModule(), "fit")
    assert type(default.strategy.checkpoint_io) is AtomicCheckpointIO

    class Custom(TorchCheckpointIO):
        pass

    chosen = pl.Trainer(logger=False, plugins=[Custom()], callbacks=[RunCheckpoint(dirpath=tmp_path)])
    chosen.callbacks[-1].setup(chosen, pl.LightningModule(), "fit")
    assert type(chosen.strategy.checkpoint_io) is Custom


def test_atomic_writer_streams_to_a_partial_file_and_leaves_no_trace_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "sub" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"global_step": 1}, target)
    assert torch.load(target, weights_only=True) == {"global_step": 1}

    def no_fsync(fd):
        assert partial_path(target).exists()  # written beside the target, not in the system temp folder
        raise OSError(5, "I/O error (injected)")

    monkeypatch.setattr("os.fsync", no_fsync)
    with pytest.raises(OSError, match="injected"):
        io.save_checkpoint({"global_step": 2}, target)
    assert torch.load(target, weights_only=True) == {"global_step": 1}
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"]
