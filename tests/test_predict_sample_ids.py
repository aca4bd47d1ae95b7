"""``predict`` on every DataModule: ``predictions.npz`` names the sample behind each row; the run says where."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # `bench/` is a top-level folder, not part of the package
    sys.path.insert(0, str(REPO_ROOT))

from bench.config_cases import case_named, write_case_config  # noqa: E402
from event_lightning.cli import main  # noqa: E402

BATCH = 2
# one config per DataModule: (config, the split predict serves, whether its samples are files). The
# classification DataModules (N-MNIST frames, POKER-DVS) share theirs: tests/test_cli.py predicts on the quickstart.
CASES = [
    ("hgvae_nmnist_synthetic", "test", True),  # NMNISTDataModule
    ("hgvae_dvsgesture_synthetic", "test", True),  # DVSGestureDataModule
    ("event2vec_synthetic", "test", True),  # ASLDVSDataModule
    ("pose_cnn_synthetic", "test", True),  # SyntheticDHP19DataModule
    ("tvae_Lpartial_mnist_synthetic", "test", False),  # MNISTSequenceDataModule
    ("tvae_Lpartial_dsprites_synthetic", "val", False),  # DSpritesSequenceDataModule
]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "split", "files"), CASES, ids=[c[0] for c in CASES])
def test_predictions_name_the_sample_of_every_row(name, split, files, tmp_path_factory, caplog):
    workdir = tmp_path_factory.getbasetemp() / "predict_sample_ids"  # stand-ins shared by the cases
    config = write_case_config(case_named(name), workdir, BATCH)
    target = tmp_path_factory.mktemp(name) / "predictions.npz"
    args = ["--config", str(config), "--predictions.path", str(target), "--trainer.limit_predict_batches", "2"]
    lightning_logger = logging.getLogger("pytorch_lightning")  # rank_zero_info's; it may not propagate to root
    lightning_logger.addHandler(caplog.handler)
    try:
        main(["predict", *args, "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"])
    finally:
        lightning_logger.removeHandler(caplog.handler)
    assert f"to {target}" in caplog.text  # the run says where it wrote
    written = np.load(target)  # plain arrays: no pickle
    rows = len(written["sample_index"])
    assert 1 <= rows <= 2 * BATCH  # two batches, or the whole of a smaller split
    assert all(len(written[key]) == rows for key in written.files)
    np.testing.assert_array_equal(written["sample_index"], np.arange(rows))  # the loader's order, unshuffled
    assert set(written["sample_split"]) == {split}
    assert ("sample_file" in written.files) == files
    if files:
        assert all(Path(file).is_file() for file in written["sample_file"])
