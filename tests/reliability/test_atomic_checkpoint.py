"""Checkpoint writes are atomic, and last.ckpt follows the step checkpoints of long epochs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO

from event_lightning.callbacks.checkpoint import partial_path
from event_lightning.cli import main


def test_a_write_that_fails_half_way_keeps_the_previous_last_ckpt(
    tmp_path, tiny_digits, quick, monkeypatch
):
    original = TorchCheckpointIO.save_checkpoint

    def fail_after_epoch_0(self, checkpoint, path, storage_options=None):
        original(self, checkpoint, path, storage_options)
        if checkpoint["global_step"] > quick.steps_per_epoch:
            # a full disk / a kill during the write: only half of the bytes reach the file
            data = Path(path).read_bytes()
            Path(path).write_bytes(data[: len(data) // 2])
            raise OSError(28, "No space left on device (injected)")

    monkeypatch.setattr(TorchCheckpointIO, "save_checkpoint", fail_after_epoch_0)
    with pytest.raises(OSError, match="injected"):
        main(["fit", *quick.args(tmp_path / "runs", tiny_digits, "--trainer.max_epochs", "2")])

    folder = tmp_path / "runs" / "quickstart" / "version_0" / "checkpoints"
    last = torch.load(folder / "last.ckpt", weights_only=True)
    assert last["global_step"] == quick.steps_per_epoch and last["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values())
    assert not list(folder.glob(".*")), "a partial file was left behind"
    assert sorted(p.name for p in folder.iterdir()) == ["epoch=0-step=4.ckpt", "last.ckpt"]


def test_last_ckpt_follows_every_n_train_steps_and_top_k_still_saves(
    tmp_path, tiny_digits, quick, monkeypatch
):
    saved: list[tuple[str, int]] = []
    original = TorchCheckpointIO.save_checkpoint

    def record(self, checkpoint, path, storage_options=None):
        saved.append((Path(path).name, checkpoint["global_step"]))
        original(self, checkpoint, path, storage_options)

    monkeypatch.setattr(TorchCheckpointIO, "save_checkpoint", record)
    args = quick.args(tmp_path / "runs", tiny_digits, "--trainer.max_epochs", "1")
    main(["fit", *args, "--checkpoint.every_n_train_steps", "1"])

    last_name = partial_path("last.ckpt").name
    # steps 1..3 inside the epoch; step 4 after validation, with the monitored top-k file first
    assert [step for name, step in saved if name == last_name] == [1, 2, 3, 4]
    assert (partial_path("epoch=0-step=4.ckpt").name, 4) in saved
    folder = tmp_path / "runs" / "quickstart" / "version_0" / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["epoch=0-step=4.ckpt", "last.ckpt"]
    assert torch.load(folder / "last.ckpt", weights_only=True)["global_step"] == 4
