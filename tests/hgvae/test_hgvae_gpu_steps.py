"""The HG-VAE's GPU path, proved on its CPU proxies: steps without host syncs, counts over the bus,
the three phases unchanged by their DDP padding, compiled = eager without recompiles, and
two-process DDP with equal weights on every rank."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from event_lightning.callbacks.hgvae_figures import HGVAEFigures
from event_lightning.callbacks.host_sync import HostSyncGuard
from event_lightning.data.datasets.nmnist import NMNISTDataModule
from event_lightning.data.loading.windows import time_first_collate
from event_lightning.models.hgvae import HybridGuidedVAE, multilabel_soft_margin_sum
from event_lightning.nn.hgvae import reparameterize

REPO = Path(__file__).resolve().parents[2]
STEPS = 12  # time steps of the small runs
TINY_MODEL = {"conv_channels": [4, 8], "pool_sizes": [2, 1], "out_features": 16, "dimz": 16, "classifier_hidden": 8}


def _trainer(**kwargs) -> pl.Trainer:
    settings = {
        "accelerator": "cpu",
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        **kwargs,
    }
    return pl.Trainer(**settings)


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> NMNISTDataModule:
    """Synthetic N-MNIST through the real reader: 4 training batches of 8, validation 8 + 4."""
    data = NMNISTDataModule(
        root=str(tmp_path_factory.mktemp("hgvae_gpu")),
        synthetic=True,
        synthetic_config={"n_train": 32, "n_test": 12},
        n_time_steps=STEPS,
        batch_size=8,
    )
    data.prepare_data()
    data.setup("fit")
    return data


def _model(data: NMNISTDataModule, **kwargs) -> HybridGuidedVAE:
    return HybridGuidedVAE(sensor_size=data.sensor_size.as_list(), num_classes=data.num_classes, **TINY_MODEL, **kwargs)


def test_counts_cross_the_bus_as_uint8_or_int16_and_become_float_on_the_device(digits: NMNISTDataModule) -> None:
    batch = next(iter(digits.train_dataloader()))
    assert batch["frames"].dtype == torch.uint8 and batch["frames"].shape == (STEPS, 8, 2, 32, 32)
    on_device = digits.on_after_batch_transfer(batch, 0)
    assert on_device["frames"].dtype == torch.float32 and torch.equal(on_device["frames"], batch["frames"].float())
    busy = {"frames": torch.full((STEPS, 2, 32, 32), 300, dtype=torch.int16).numpy(), "target": 1}
    assert time_first_collate([busy, busy])["frames"].dtype == torch.int16  # a bin above 255 events


def test_training_validation_and_figure_steps_do_not_sync_with_the_host(digits: NMNISTDataModule) -> None:
    pl.seed_everything(0, verbose=False)
    model = _model(digits)
    figures = HGVAEFigures(every_n_epochs=1, max_samples=12, n_reconstructions=4)
    trainer = _trainer(
        max_epochs=1, limit_train_batches=3, num_sanity_val_steps=0, callbacks=[HostSyncGuard(check_steps=3), figures]
    )
    trainer.fit(model, datamodule=digits)  # HostSyncError on any sync in the guarded steps and hooks
    assert bool(model.lsuv_done)
    assert sum(len(z) for z in figures._collected["z"]) == 12 and figures._collected["z"][0].shape == (8, 16)


def _reference_step(model: HybridGuidedVAE, optimizers: list, frames: torch.Tensor, target: torch.Tensor) -> None:
    """One training step as the three phases were written before DDP: each phase backpropagates
    its own loss only, then every optimiser steps."""
    onehot = torch.nn.functional.one_hot(target, model.num_guided).to(frames.dtype)
    k = model.num_guided

    def phase(loss: torch.Tensor) -> None:
        for opt in optimizers:
            opt.zero_grad()
        loss.backward()
        for opt in optimizers:
            opt.step()

    out = model.net(frames)
    phase(model.vae_losses(out, model.reconstruction_target(frames), onehot)["loss"])
    z_b = reparameterize(out.mu.detach(), out.logvar.detach())
    phase(multilabel_soft_margin_sum(model.inhibit(z_b[:, k:]), onehot))
    mu, logvar = model.net.encode(frames)
    phase(multilabel_soft_margin_sum(model.inhibit(reparameterize(mu, logvar)[:, k:]), torch.full_like(onehot, 0.5)))


class _SeedEachBatch(pl.Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        torch.manual_seed(batch_idx)


def test_the_zero_weighted_idle_parameters_leave_every_phase_unchanged(digits: NMNISTDataModule) -> None:
    model = _model(digits, lsuv=False, kl_per_batch_count=False)
    reference = copy.deepcopy(model)
    batches = [digits.on_after_batch_transfer(b, 0) for b, _ in zip(digits.train_dataloader(), range(2), strict=False)]
    trainer = _trainer(max_epochs=1, callbacks=[_SeedEachBatch()])
    trainer.fit(model, train_dataloaders=DataLoader(batches, batch_size=None))

    optimizers, _ = reference.configure_optimizers()
    reference.train()
    for i, batch in enumerate(batches):
        torch.manual_seed(i)
        _reference_step(reference, optimizers, batch["frames"], batch["target"])
    for (name, p), p_ref in zip(model.state_dict().items(), reference.state_dict().values(), strict=True):
        assert torch.equal(p, p_ref), name


class _GraphCounter(pl.Callback):
    """TorchDynamo graphs compiled so far, recorded after every training and validation step."""

    def __init__(self) -> None:
        self.after: list[tuple[str, int]] = []

    @staticmethod
    def _graphs() -> int:
        return torch._dynamo.utils.counters["stats"]["unique_graphs"]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.after.append(("train", self._graphs()))

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self.after.append(("val", self._graphs()))


@pytest.mark.slow
def test_compiled_bf16_fit_compiles_once_per_mode_and_equals_eager(digits: NMNISTDataModule) -> None:
    torch._dynamo.reset()
    pl.seed_everything(0, verbose=False)
    model = _model(digits, compile=True)
    counter = _GraphCounter()
    start = counter._graphs()
    trainer = _trainer(
        max_epochs=2, limit_train_batches=2, num_sanity_val_steps=0, precision="bf16-mixed", callbacks=[counter]
    )
    trainer.fit(model, datamodule=digits)
    # epoch 0: train, train, val (8), val (4); epoch 1 again: graphs only at the first train and
    # the first val step (grad mode differs); the smaller last batch shares the val graph
    stages = [stage for stage, _ in counter.after]
    assert stages == ["train", "train", "val", "val"] * 2
    new_graphs = [graphs - start for _, graphs in counter.after]
    assert new_graphs == [1, 1, 2, 2, 2, 2, 2, 2], new_graphs

    # compiled and eager encoder in the training step's context (grad mode, Lightning's bf16
    # autocast, batch 8): the graph compiled above, no new one
    encoder = model.net.encoder
    frames = digits.on_after_batch_transfer(next(iter(digits.train_dataloader())), 0)["frames"]
    with trainer.precision_plugin.train_step_context():
        compiled, eager = encoder(frames), encoder.forward(frames)
    assert counter._graphs() - start == 2
    assert compiled.dtype == eager.dtype == torch.float32
    # the convolutions run in bf16 in both: agreement to bf16 rounding (2^-8 relative)
    relative_error = lambda got, expected: float((got - expected).norm() / expected.norm())  # noqa: E731
    assert relative_error(compiled, eager) < 2**-8
    compiled.sum().backward()
    compiled_grads = [p.grad.clone() for p in encoder.parameters()]
    encoder.zero_grad()
    eager.sum().backward()
    # gradients sum bf16 products over the batch, time and pixels in an order each path picks:
    # a few bf16 roundings (2^-6) apart
    for got, (name, p) in zip(compiled_grads, encoder.named_parameters(), strict=True):
        assert relative_error(got, p.grad) < 2**-6, (name, relative_error(got, p.grad))
    torch._dynamo.reset()


@pytest.mark.slow
def test_two_process_ddp_keeps_the_ranks_equal(tmp_path: Path, digits: NMNISTDataModule) -> None:
    """Plain ``strategy: ddp`` (no find_unused_parameters): the three phases, LSUV on rank 0's
    batch and the guides' BatchNorm statistics leave both ranks with the same weights."""
    report = tmp_path / "report"
    command = [
        sys.executable,
        str(REPO / "train_script.py"),
        "fit",
        "--config",
        str(REPO / "config" / "hgvae_nmnist_synthetic.yaml"),
        "--trainer.callbacks=[]",
        "--data.root",
        str(Path(digits.hparams.root)),
        "--data.synthetic_config",
        json.dumps({"n_train": 32, "n_test": 12}),
        "--data.n_time_steps",
        str(STEPS),
        "--data.batch_size",
        "8",
        "--model.init_args.conv_channels",
        "[4, 8]",
        "--model.init_args.out_features",
        "16",
        "--trainer.logger.init_args.save_dir",
        str(tmp_path / "runs"),
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_model_summary",
        "false",
        "--trainer.max_steps",
        "24",  # two batches per rank: 12 optimiser steps per batch (3 phases x 4 optimisers)
        "--trainer.accelerator",
        "cpu",
        "--trainer.devices",
        "2",
        "--trainer.strategy",
        "ddp",
        "--trainer.callbacks+=event_lightning.callbacks.rank_consistency.RankConsistencyCheck",
        "--trainer.callbacks.every_n_steps",
        "12",
        "--trainer.callbacks.report_dir",
        str(report),
    ]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert output.count("LSUV:") == 1  # once, on rank 0, then broadcast
    ranks = [json.loads((report / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2] and ranks[0]["global_step"] == 24
    assert ranks[0]["checks"] >= 2  # after the first batch (LSUV) and later
    assert ranks[0]["fingerprints"] == ranks[1]["fingerprints"]
    assert any("running_mean" in name for name in ranks[0]["fingerprints"])  # the BatchNorm statistics too
