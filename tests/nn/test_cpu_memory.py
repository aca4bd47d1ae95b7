"""Keeping freed heap memory between CPU training steps (event_lightning.nn.cpu_memory).

Whether glibc then stops page-faulting a step's memory in depends on the heap's history, so it is
measured where it matters, by the bench (pose SNN step: 6k-28k minor faults per step before, 1-2
after); these tests check that the setting takes and that every model asks for it on the CPU.
"""

import sys

import pytest
import torch

from event_lightning.models import base
from event_lightning.models.lif_classifier import LIFClassifier
from event_lightning.models.pose import PoseSNN
from event_lightning.nn.cpu_memory import keep_freed_heap_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_glibc_accepts_the_thresholds():
    assert keep_freed_heap_memory()
    assert keep_freed_heap_memory()  # set once per process, answered again


@pytest.mark.parametrize(
    "make",
    [lambda: PoseSNN(base_channels=2), lambda: LIFClassifier(sensor_size=[4, 4, 2], num_classes=2, hidden_features=4)],
)
def test_models_keep_freed_memory_when_they_train_on_the_cpu(monkeypatch, make):
    calls = []
    monkeypatch.setattr(base, "keep_freed_heap_memory", lambda: calls.append(1))
    model = make()
    model.on_fit_start()
    assert calls == [1]
    monkeypatch.setattr(type(model), "device", property(lambda self: torch.device("meta")))
    model.on_fit_start()
    assert calls == [1]
