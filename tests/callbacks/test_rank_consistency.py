"""RankConsistencyCheck: equal replicas pass, a weight changed on one rank stops the run by name."""

from __future__ import annotations

import json

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from event_lightning.callbacks.rank_consistency import RankConsistencyCheck, weight_fingerprints


class _Model(pl.LightningModule):
    def __init__(self, nudge_rank: int | None = None) -> None:
        super().__init__()
        self.encoder = torch.nn.Linear(4, 8)
        self.head = torch.nn.Linear(8, 2)
        self.nudge_rank = nudge_rank

    def training_step(self, batch, batch_idx):
        inputs, labels = batch
        if batch_idx == 0 and self.global_rank == self.nudge_rank:
            with torch.no_grad():  # an initialisation computed on this rank's own batch
                self.head.bias.add_(inputs.mean())
        return torch.nn.functional.cross_entropy(self.head(self.encoder(inputs).relu()), labels)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(model, check, devices=2):
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(64, 4), torch.randint(0, 2, (64,)))
    trainer = pl.Trainer(
        max_epochs=1,
        limit_train_batches=4,
        accelerator="cpu",
        devices=devices,
        strategy="ddp_spawn" if devices > 1 else "auto",
        callbacks=[check],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, DataLoader(data, batch_size=8))


def test_fingerprints_tell_a_single_changed_element_and_a_permutation():
    layer = torch.nn.Linear(5, 3)
    names, before = weight_fingerprints(layer)
    assert names == ["weight", "bias"] and before.shape == (2, 3) and before.dtype == torch.float64
    with torch.no_grad():
        layer.bias.copy_(layer.bias.flip(0))
    assert not torch.equal(weight_fingerprints(layer)[1][1], before[1])
    assert torch.equal(weight_fingerprints(layer)[1][0], before[0])


@pytest.mark.slow
def test_equal_replicas_pass_and_every_rank_reports_the_same_weights(tmp_path):
    _fit(_Model(), RankConsistencyCheck(every_n_steps=2, report_dir=str(tmp_path)))
    reports = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [r["world_size"] for r in reports] == [2, 2]
    assert reports[0]["global_step"] == reports[1]["global_step"] == 4
    assert reports[0]["checks"] == 3  # after batch 1, at step 2, at step 4 (the end adds none)
    assert reports[0]["fingerprints"] == reports[1]["fingerprints"]


@pytest.mark.slow
def test_a_weight_changed_on_one_rank_stops_the_run_naming_it():
    with pytest.raises(Exception, match=r"different weights at global step 1.*'head.bias'"):
        _fit(_Model(nudge_rank=1), RankConsistencyCheck())


def test_single_process_checks_pass_and_bad_settings_are_refused(tmp_path):
    check = RankConsistencyCheck(report_dir=str(tmp_path))
    _fit(_Model(), check, devices=1)
    assert check.checks == 2  # after the first batch and at the end
    with pytest.raises(ValueError, match="every_n_steps"):
        RankConsistencyCheck(every_n_steps=-1)
    with pytest.raises(ValueError, match="atol"):
        RankConsistencyCheck(atol=-1.0)
