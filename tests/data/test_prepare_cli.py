"""``python -m event_lightning.data prepare/inspect`` on the POKER-DVS stand-in, run in-process."""

from __future__ import annotations

import contextlib
import io
from functools import partial
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch

from event_lightning.data.__main__ import main
from event_lightning.data.inspection import _as_frames, event_statistics
from event_lightning.data.registry import DATASETS
from event_lightning.events.core import make_events


@pytest.fixture(scope="module")
def prepared_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Prepare the stand-in once (writing it takes most of this file's time); keep the output."""
    root = tmp_path_factory.mktemp("pokerdvs")
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(["prepare", "pokerdvs", "--root", str(root), "--synthetic"])
    assert code == 0
    return root, buffer.getvalue()


def test_prepare_reports_split_sizes(prepared_root: tuple[Path, str]) -> None:
    root, output = prepared_root
    assert "train: 48 samples" in output
    assert "test: 20 samples" in output
    (standin,) = root.glob("synthetic-pokerdvs-*")  # one folder per stand-in parameters
    assert (standin / "POKERDVS" / "pips_train.tar.gz").is_file()


def test_inspect_counts_statistics_and_picture(prepared_root: tuple[Path, str], capsys, tmp_path: Path) -> None:
    import tonic

    root, _ = prepared_root
    picture = tmp_path / "p.png"
    code = main(["inspect", "pokerdvs", "--root", str(root), "--synthetic", "--picture", str(picture)])
    output = capsys.readouterr().out
    assert code == 0
    assert "train: 48 samples" in output and "test: 20 samples" in output
    # Reference: the event counts tonic itself reads from the same files.
    (standin,) = root.glob("synthetic-pokerdvs-*")
    counts = np.array([len(events) for events, _ in tonic.datasets.POKERDVS(save_to=str(standin), train=True)])
    expected = f"events per sample: min {counts.min():.4g}, median {np.median(counts):.4g}, max {counts.max():.4g}"
    assert expected in output
    assert "event rate" in output
    image = mpimg.imread(picture)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert float(image[..., :3].std()) > 0.01  # not a blank canvas


def test_prepare_without_archives_names_the_file(tmp_path: Path, capsys) -> None:
    code = main(["prepare", "pokerdvs", "--root", str(tmp_path)])
    error = capsys.readouterr().err
    assert code == 2
    assert "pips_train.tar.gz" in error
    assert str(tmp_path / "POKERDVS") in error
    # the DataModule's message says how to get the archives; the registry's text is not repeated
    assert error.count("cannot download POKER-DVS") == 1


def test_unknown_dataset_lists_known_names(tmp_path: Path, capsys) -> None:
    code = main(["inspect", "no_such_set", "--root", str(tmp_path)])
    error = capsys.readouterr().err
    assert code == 2
    assert "no_such_set" in error
    for name in DATASETS:
        assert name in error


def test_registry_marks_manual_datasets_with_instructions() -> None:
    for name, entry in DATASETS.items():
        assert entry.downloadable or entry.manual, name
    assert not DATASETS["pokerdvs"].downloadable and DATASETS["nmnist"].downloadable


def test_event_statistics_counts_and_rates() -> None:
    a = make_events(x=[0, 1, 2], y=[0, 0, 0], t=[0, 500_000, 1_000_000], p=[1, 0, 1])  # 3 events over 1 s
    b = make_events(x=[0, 1], y=[1, 1], t=[10, 250_010], p=[0, 0])  # 2 events over 0.25 s
    stats = event_statistics([(a, 0), (b, 1), (a, 0)], max_samples=2)
    assert stats.n_samples == 2
    np.testing.assert_array_equal(stats.events, [3, 2])
    np.testing.assert_allclose(stats.rate, [3.0, 8.0])


def test_as_frames_shapes_for_plotting() -> None:
    assert _as_frames(torch.ones(20, 2, 8, 8), 8).shape == (8, 2, 8, 8)  # [T, P, H, W] kept, T capped
    colour = _as_frames(torch.ones(5, 3, 4, 4), 8)  # RGB sequence -> one summed channel
    assert colour.shape == (5, 1, 4, 4) and float(colour.max()) == 3.0
    assert _as_frames(torch.ones(4, 4), 8).shape == (1, 1, 4, 4)


@pytest.mark.slow
def test_prepare_fills_the_frame_cache_and_inspect_reads_it(tmp_path: Path, capsys, monkeypatch) -> None:
    """DVSGesture (HG-VAE) caches every recording's frames: prepare writes one file per training
    recording, and a second prepare reads them instead of re-framing."""
    from event_lightning.data.datasets import dvsgesture
    from event_lightning.data.standins.dvsgesture import SyntheticGesturesConfig

    # the default stand-in has the real 6.5 s recordings (176 of them): 0.5 s ones show the same
    monkeypatch.setattr(dvsgesture, "SyntheticGesturesConfig", partial(SyntheticGesturesConfig, duration_us=500_000))
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(["prepare", "dvsgesture", "--root", str(tmp_path), "--synthetic"]) == 0
    train_size = int(buffer.getvalue().split("train: ")[1].split(" samples")[0])
    (cache,) = (tmp_path / "cache").glob("dvsgesture-train-*")
    cached = sorted(cache.glob("*.npy"))
    assert len(cached) == train_size > 0
    first_write = cached[0].stat().st_mtime_ns
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["prepare", "dvsgesture", "--root", str(tmp_path), "--synthetic"]) == 0
    assert cached[0].stat().st_mtime_ns == first_write  # read from the cache, not rewritten
    assert main(["inspect", "dvsgesture", "--root", str(tmp_path), "--synthetic"]) == 0
    assert f"train: {train_size}" in capsys.readouterr().out
