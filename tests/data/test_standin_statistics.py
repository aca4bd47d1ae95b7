"""The DVSGesture, ASL-DVS and DHP19 stand-ins against their real datasets' published statistics.

Each test writes a few recordings at the stand-in's default (real) length and checks the statistic
docs/datasets.md states for the real dataset: duration, events per recording, event rate, ON share.
"""

from __future__ import annotations

import numpy as np
import pytest

from event_lightning.data.standins import dvsgesture
from event_lightning.data.standins.asl_dvs import (
    REAL_MAX_DURATION_US,
    REAL_MAX_EVENTS,
    REAL_MEAN_EVENTS,
    REAL_MIN_EVENTS,
    SyntheticASLConfig,
    synthetic_hand_events,
)
from event_lightning.events.formats.dvsgesture_npy import read_dvsgesture_npy


def test_dvsgesture_recordings_last_and_hold_what_the_real_gestures_do(tmp_path):
    # every lighting (their background activity differs), one gesture, the default length
    config = dvsgesture.SyntheticGesturesConfig(n_classes=1, include_other=False, train_users=[1], test_users=[])
    dvsgesture.generate_synthetic_gestures(tmp_path, config)
    recordings = [read_dvsgesture_npy(f) for f in sorted(tmp_path.glob("DVSGesture/ibmGestureTrain/*/*.npy"))]
    assert len(recordings) == len(config.lightings)
    durations = np.array([r["t"][-1] - r["t"][0] for r in recordings])
    counts = np.array([len(r) for r in recordings])
    assert config.duration_us == dvsgesture.REAL_MEAN_DURATION_US
    real_us = dvsgesture.REAL_MEAN_DURATION_US  # the real gestures' mean: 6.46 s
    assert np.all(np.abs(durations - real_us) < 0.01 * real_us)
    # real: 362k events per gesture on average (56k events/s); the lightings differ, their mean should not
    assert 0.6 * dvsgesture.REAL_MEAN_EVENTS < counts.mean() < 1.6 * dvsgesture.REAL_MEAN_EVENTS
    on_share = np.concatenate([r["p"] for r in recordings]).astype(bool).mean()
    assert 0.45 < on_share < 0.55


def test_asl_dvs_counts_and_durations_span_the_real_range():
    config = SyntheticASLConfig(num_classes=6)
    rng = np.random.default_rng(0)
    recordings = [synthetic_hand_events(rng, i % config.num_classes, config) for i in range(200)]
    counts = np.array([len(r) for r in recordings])
    durations = np.array([r["t"][-1] - r["t"][0] for r in recordings])
    assert config.events_per_sample == REAL_MEAN_EVENTS
    # real: 195 - 470 435 events, 28k on average, heavy-tailed (the median well below the mean)
    assert counts.min() >= REAL_MIN_EVENTS and counts.max() <= REAL_MAX_EVENTS
    assert 0.8 * REAL_MEAN_EVENTS < counts.mean() < 1.25 * REAL_MEAN_EVENTS
    assert np.median(counts) < 0.75 * counts.mean()
    assert counts.max() > 5 * REAL_MEAN_EVENTS
    # real: up to 521 ms; the stand-in's spread from a few ms to hundreds of ms
    assert durations.max() <= REAL_MAX_DURATION_US
    assert durations.min() < 20_000 and durations.max() > 300_000
    on_share = np.concatenate([r["p"] for r in recordings]).astype(bool).mean()
    assert 0.45 < on_share < 0.55


@pytest.mark.parametrize("short_fraction", [0.0, 1.0])
def test_asl_dvs_short_recordings_stay_within_the_real_minimum(short_fraction):
    config = SyntheticASLConfig(num_classes=2, events_per_sample=300, short_fraction=short_fraction)
    rng = np.random.default_rng(1)
    counts = np.array([len(synthetic_hand_events(rng, i % 2, config)) for i in range(50)])
    assert counts.min() >= REAL_MIN_EVENTS
    assert (counts < 255).all() if short_fraction == 1.0 else (counts >= 255).all()


def test_dhp19_recordings_last_ten_movements_with_a_cnn_frame_every_100_ms(tmp_path):
    from event_lightning.data.datasets.dhp19 import SyntheticDHP19DataModule
    from event_lightning.data.standins.dhp19 import (
        CNN_FRAME_EVENTS,
        DEFAULT_DURATION_MS,
        SyntheticDHP19Config,
        write_synthetic_dhp19,
    )
    from event_lightning.events.formats.dhp19_h5 import read_dhp19_events, read_dhp19_labels

    # ten repetitions of a movement by default (the module and the DataModule agree)
    assert SyntheticDHP19Config().duration_ms == DEFAULT_DURATION_MS >= 10_000
    assert SyntheticDHP19DataModule(root=str(tmp_path)).synthetic.duration_ms == DEFAULT_DURATION_MS
    # the statistics below hold at any length: 1 s of one camera keeps the test quick
    duration_ms = 1000
    write_synthetic_dhp19(tmp_path, SyntheticDHP19Config(subjects=(1,), cameras=(3,), duration_ms=duration_ms))
    events, ms_to_idx = read_dhp19_events(tmp_path / "S1_session1_mov1_events.h5", 3)
    poses, stamps = read_dhp19_labels(tmp_path / "S1_session1_mov1_label.h5")
    assert events["t"][-1] - events["t"][0] > 0.99 * duration_ms * 1000
    assert len(stamps) == duration_ms // 10 and np.all(np.diff(stamps) == 10_000)  # labels every 10 ms
    assert poses.shape[1:] == (3, 13) and len(ms_to_idx) > duration_ms
    # DHP19's constant-count frames (7500 events of one camera), read by the hybrid's CNN once per 100 ms,
    # gather about 100 ms of a moving subject
    spans_ms = np.diff(events["t"][::CNN_FRAME_EVENTS]) / 1e3
    assert 50 < np.median(spans_ms) < 200
    assert 0.45 < events["p"].astype(bool).mean() < 0.55
