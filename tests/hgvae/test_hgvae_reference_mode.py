"""HG-VAE reference mode: the optimiser steps of torch 1.10's zero-filled gradients, and the
reference configs that turn it and the reference's LSUV rule on."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import yaml

from event_lightning.data.datasets.nmnist import NMNISTDataModule
from event_lightning.models.hgvae import HybridGuidedVAE

REPO = Path(__file__).resolve().parents[2]
TINY_MODEL = {"conv_channels": [4, 8], "pool_sizes": [2, 1], "out_features": 16, "dimz": 16, "classifier_hidden": 8}
BATCHES = 2


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> NMNISTDataModule:
    data = NMNISTDataModule(
        root=str(tmp_path_factory.mktemp("hgvae_reference")),
        synthetic=True,
        synthetic_config={"n_train": 8 * BATCHES, "n_test": 8},
        n_time_steps=8,
        batch_size=8,
    )
    data.prepare_data()
    data.setup("fit")
    return data


def _optimiser_steps(data: NMNISTDataModule, legacy: bool, make_trainer) -> dict[str, set[int]]:
    """Per part of the network, the optimiser step counts of its parameters after ``BATCHES`` batches."""
    pl.seed_everything(0, verbose=False)
    model = HybridGuidedVAE(
        sensor_size=data.sensor_size.as_list(),
        num_classes=data.num_classes,
        lsuv=False,
        legacy_zero_grad_steps=legacy,
        **TINY_MODEL,
    )
    trainer = make_trainer(limit_val_batches=0)
    trainer.fit(model, train_dataloaders=data.train_dataloader())
    parts = {
        "encoder": model.net.encoder,
        "heads": [model.net.mu_head, model.net.logvar_head],
        "decoder": model.net.decoder,
        "excite": model.net.excite,
        "inhibit": model.inhibit,
    }
    state = {id(p): s for opt in trainer.optimizers for p, s in opt.state.items()}
    steps = {}
    for name, modules in parts.items():
        modules = modules if isinstance(modules, list) else [modules]
        steps[name] = {int(state[id(p)]["step"]) for m in modules for p in m.parameters()}
    return steps


def test_legacy_zero_grad_steps_step_every_optimiser_after_every_phase(digits: NMNISTDataModule, quiet_cpu_trainer):
    """torch 1.10 (the reference): per batch the decoder gets 1 real + 2 momentum-only steps, the
    excitation net 1 + 3 (phase C's extra step), heads and encoder 2 + 1, the inhibition net 2 + 1
    (only 2 in the first batch: before phase B it never had a gradient)."""
    legacy = _optimiser_steps(digits, legacy=True, make_trainer=quiet_cpu_trainer)
    assert legacy == {
        "encoder": {3 * BATCHES},
        "heads": {3 * BATCHES},
        "decoder": {3 * BATCHES},
        "excite": {4 * BATCHES},
        "inhibit": {3 * BATCHES - 1},
    }
    # default: an optimiser steps only what the phase trained
    assert _optimiser_steps(digits, legacy=False, make_trainer=quiet_cpu_trainer) == {
        "encoder": {2 * BATCHES},
        "heads": {2 * BATCHES},
        "decoder": {BATCHES},
        "excite": {BATCHES},
        "inhibit": {2 * BATCHES},
    }


@pytest.mark.parametrize("name", ["hgvae_dvsgesture", "hgvae_nmnist"])
def test_configs_of_published_results_run_as_the_reference_ran(name: str) -> None:
    model = yaml.safe_load((REPO / "config" / f"{name}.yaml").read_text())["model"]["init_args"]
    assert model["lsuv_rule"] == "reference" and model["legacy_zero_grad_steps"] is True
