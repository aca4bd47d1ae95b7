"""Every method's DataModule works under DDP's sampler: Lightning swaps in a DistributedSampler,
rebuilds each loader with it (our collates, guards and samplers included), and the ranks split
the data between them.

This is what ``Trainer(strategy="ddp")`` does to each loader (``use_distributed_sampler``); here
it runs for 2 ranks in one process on each method's synthetic DataModule, shrunk as the
benchmark's quick pass shrinks it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pytorch_lightning.trainer.states import RunningStage
from pytorch_lightning.utilities.data import _update_dataloader
from torch.utils.data import DistributedSampler, RandomSampler, SequentialSampler

from bench.configs import _merge, build_datamodule, read_config
from bench.rows_methods import METHOD_CASES

pytestmark = pytest.mark.slow
CASES = {case.name: case for case in METHOD_CASES}


def _rank_loaders(loader, train: bool):
    assert isinstance(loader.sampler, RandomSampler if train else SequentialSampler), type(loader.sampler)
    stage = RunningStage.TRAINING if train else RunningStage.VALIDATING
    return [
        _update_dataloader(
            loader, DistributedSampler(loader.dataset, num_replicas=2, rank=rank, shuffle=train, seed=0), mode=stage
        )
        for rank in (0, 1)
    ]


@pytest.mark.parametrize("name", list(CASES))
def test_ddp_sampler_splits_every_loader(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    overrides = _merge(case.data, case.quick_data)
    overrides["root"] = str(tmp_path)
    overrides["batch_size"] = 2  # every rank of these tiny stand-ins still fills a (drop_last) batch
    data = build_datamodule(read_config(case.config), overrides)
    data.prepare_data()
    data.setup("fit")
    for train, loader in ((True, data.train_dataloader()), (False, data.val_dataloader())):
        ranks = _rank_loaders(loader, train)
        indices = [list(rank.sampler) for rank in ranks]
        assert all(isinstance(rank.sampler, DistributedSampler) for rank in ranks)
        assert set(indices[0]) | set(indices[1]) == set(range(len(loader.dataset)))
        if len(loader.dataset) % 2 == 0:
            assert not set(indices[0]) & set(indices[1])  # no sample on both ranks
        for rank in ranks:  # the rebuilt loader (collate, bad-sample guard) still yields batches
            next(iter(rank))
