"""``compile: true`` on the recurrent pose models: compiled equals eager, the graphs do not grow with
T, and nothing recompiles after the first training and the first validation step.

What compiles are the parameter-free step cells (the LIF step, the pointwise ConvLSTM update):
the time loops stay in Python, so the graph is the same for every window length. After one
training and one validation step, further steps with another batch size and another window
length must reuse the graphs (``TORCH_LOGS=recompiles`` would print nothing).
"""

from __future__ import annotations

import logging

import pytest
import pytorch_lightning as pl
import torch
from torch._dynamo.utils import counters

from event_lightning.data.datasets.dhp19 import SyntheticDHP19DataModule
from event_lightning.models.pose import PoseHybridCNNRNN, PoseHybridCNNSNN, PoseRNN, PoseSNN
from event_lightning.nn.pose import PoseUNetCNN

pytestmark = pytest.mark.slow
DATA = dict(subjects=[1, 13], duration_ms=600, camera_views=[3], synthetic_cameras=[2, 3], cnn_event_count=1500)


class _Recompiles(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def recompiles(single_thread):
    torch._dynamo.reset()
    counters.clear()
    handler = _Recompiles()
    torch._logging.set_logs(recompiles=True)
    logger = logging.getLogger("torch._dynamo")
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)
    torch._logging.set_logs()


def _batch(root: str, mode: str, batch_size: int, window_ms: int) -> dict:
    dm = SyntheticDHP19DataModule(
        root=root, mode=mode, downsample=8, window_ms=window_ms, step_ms=50, batch_size=batch_size, **DATA
    )
    dm.setup("fit")
    return dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)


def _pair(make) -> tuple[pl.LightningModule, pl.LightningModule]:
    torch.manual_seed(0)
    eager, compiled = make(False), make(True)
    for model in (eager, compiled):
        model.setup("fit")
        model.log = lambda *args, **kwargs: None
    compiled.load_state_dict(eager.state_dict())
    compiled.configure_model()
    return eager, compiled


def _train(model: pl.LightningModule, batch: dict) -> torch.Tensor:
    model.train()
    model.zero_grad()
    loss = model.training_step(batch, 0)
    loss.backward()
    return loss.detach()


def _validate(model: pl.LightningModule, batch: dict) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        loss = model.validation_step(batch, 0)
    model.on_validation_epoch_end()  # the next batch may have another window length
    return loss


@pytest.mark.parametrize("kind", ["snn", "rnn", "hybrid_cnn_snn", "hybrid_cnn_rnn"])
def test_compiled_step_cells_equal_eager_and_never_recompile(kind, recompiles, tmp_path):
    root = str(tmp_path / "data")
    mode = "sequence" if kind in ("snn", "rnn") else "hybrid"
    cnn = tmp_path / "cnn.pt"
    torch.save(PoseUNetCNN(20, 13, 4).state_dict(), cnn)
    hybrid = dict(cnn_checkpoint=str(cnn), cnn_base_channels=4, base_channels=4)
    make = {
        "snn": lambda c: PoseSNN(base_channels=4, compile=c),
        "rnn": lambda c: PoseRNN(base_channels=4, compile=c),
        "hybrid_cnn_snn": lambda c: PoseHybridCNNSNN(**hybrid, compile=c),
        "hybrid_cnn_rnn": lambda c: PoseHybridCNNRNN(**hybrid, compile=c),
    }[kind]
    eager, compiled = _pair(make)
    first, other = _batch(root, mode, 2, 30), _batch(root, mode, 3, 50)

    for batch in (first, other):
        torch.testing.assert_close(_train(compiled, batch), _train(eager, batch), rtol=1e-5, atol=1e-6)
        for (name, p_eager), p_compiled in zip(eager.named_parameters(), compiled.parameters(), strict=True):
            if p_eager.grad is not None:
                torch.testing.assert_close(p_compiled.grad, p_eager.grad, rtol=1e-4, atol=1e-6, msg=name)
        torch.testing.assert_close(_validate(compiled, batch), _validate(eager, batch), rtol=1e-5, atol=1e-6)
        if batch is first:
            graphs, seen = counters["stats"]["unique_graphs"], len(recompiles)
    # a training graph and an inference graph of the one cell; another batch size and window
    # length (3 and 5 steps instead of 2 and 3) compile nothing new
    assert graphs == 2, recompiles
    assert counters["stats"]["unique_graphs"] == graphs and len(recompiles) == seen, recompiles[seen:]
