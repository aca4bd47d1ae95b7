"""Two-process CPU DDP (gloo) through the real entrypoint: every rank holds the same weights.

RankConsistencyCheck compares a fingerprint of every parameter and buffer across the ranks after
every step. The two hybrids cover every network the pose models are built from (the frozen CNN,
the state heads, the SNN and the ConvLSTM UNet) and their BatchNorm running statistics, which DDP
alone would leave different on each rank (see ``average_running_stats``).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from event_lightning.data.datasets.dhp19 import SyntheticDHP19DataModule
from event_lightning.nn.pose import PoseUNetCNN

pytestmark = pytest.mark.slow
STEPS = 3
DATA = {"subjects": [1, 2, 13], "duration_ms": 800, "movements_per_subject": 1, "synthetic_cameras": [2, 3]}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> str:
    # written once here: the two ranks would otherwise both write the stand-in
    root = str(tmp_path_factory.mktemp("pose_ddp"))
    SyntheticDHP19DataModule(root=root, **DATA).prepare_data()
    return root


@pytest.mark.parametrize("config", ["hybrid_cnn_snn", "hybrid_cnn_rnn"])
def test_two_ranks_hold_identical_weights_after_every_step(config, data_root, tmp_path, quick):
    cnn = tmp_path / "cnn.pt"
    torch.save(PoseUNetCNN(20, 13, 8).state_dict(), cnn)
    reports = tmp_path / "ranks"
    data = [f"--data.init_args.{key}={json.dumps(value)}" for key, value in DATA.items()]
    command = [
        sys.executable,
        quick.train_script,
        "fit",
        "--config",
        str(quick.repo / "config" / f"pose_{config}_synthetic.yaml"),
        f"--data.init_args.root={data_root}",
        *data,
        f"--model.init_args.cnn_checkpoint={cnn}",
        f"--trainer.logger.init_args.save_dir={tmp_path / 'runs'}",
        "--trainer.enable_progress_bar=false",
        "--trainer.accelerator=cpu",
        "--trainer.devices=2",
        "--trainer.strategy=ddp",
        f"--trainer.max_steps={STEPS}",
        "--trainer.limit_val_batches=1",
        "--trainer.num_sanity_val_steps=0",
        "--trainer.callbacks+=event_lightning.callbacks.rank_consistency.RankConsistencyCheck",
        "--trainer.callbacks.every_n_steps=1",
        f"--trainer.callbacks.report_dir={reports}",
    ]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rank0, rank1 = (json.loads((reports / f"rank{rank}.json").read_text()) for rank in (0, 1))
    assert rank0["world_size"] == 2 and rank0["global_step"] == rank1["global_step"] == STEPS
    assert rank0["checks"] == STEPS  # after the first batch, then every step
    assert any("running_mean" in name for name in rank0["fingerprints"])  # BatchNorm statistics compared too
    assert rank0["fingerprints"] == rank1["fingerprints"]
