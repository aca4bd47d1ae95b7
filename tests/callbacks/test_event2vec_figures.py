"""Event2Vec's token and attention maps: the class token's attention against torch's own attention weights."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from PIL import Image
from pytorch_lightning.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from event_lightning.callbacks.event2vec_figures import Event2VecAttentionLogger, attention_maps, cls_attention
from event_lightning.data.loading.event_samplers import EventBatch
from event_lightning.models.event2vec import Event2VecClassifier
from event_lightning.nn.event2vec import Event2VecConfig, Event2VecNet

SENSOR = (40, 30, 2)


def _batch(seed: int = 0, batch: int = 3, length: int = 50) -> EventBatch:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randint(0, SENSOR[0], (batch, length), generator=generator)
    y = torch.randint(0, SENSOR[1], (batch, length), generator=generator)
    p = torch.randint(0, 2, (batch, length), generator=generator)
    t = torch.rand(batch, length, generator=generator).sort(dim=1).values
    valid = torch.ones(batch, length, dtype=torch.bool)
    valid[1, 30:] = False
    x, y, p = (a.masked_fill(~valid, -1) for a in (x, y, p))
    return EventBatch(x, y, t, p, valid, label=torch.tensor([0, 2, 1]))


def _net() -> Event2VecNet:
    torch.manual_seed(0)
    config = Event2VecConfig(width=SENSOR[0], height=SENSOR[1], h=6, w=8, d_model=16, n_head=4, d_feedforward=32)
    return Event2VecNet(config).eval()


def test_class_token_attention_is_torchs_attention_weights():
    net, batch = _net(), _batch()
    inputs: list[torch.Tensor] = []
    last = net.classifier.encoder.layers[-1]
    handle = last.register_forward_pre_hook(lambda module, args, kwargs: inputs.append(args[0]), with_kwargs=True)
    with torch.no_grad():
        logits = net(batch.x, batch.y, batch.t, batch.p, batch.valid_mask)
    handle.remove()
    found = cls_attention(net, batch)
    torch.testing.assert_close(found["logits"], logits)
    ignore = torch.cat((torch.zeros(3, 1, dtype=torch.bool), ~batch.valid_mask), dim=1)
    with torch.no_grad():
        _, weights = last.self_attn(inputs[0], inputs[0], inputs[0], key_padding_mask=ignore, need_weights=True)
    torch.testing.assert_close(found["attention"], weights[:, 0, 1:])  # mean over heads, the class token's row
    assert (found["attention"][1, 30:] == 0).all()


def test_maps_sum_events_and_attention_per_grid_cell():
    found = cls_attention(_net(), _batch())
    counts, attention = attention_maps(found, 6, 8)
    assert counts.shape == attention.shape == (3, 6, 8)
    np.testing.assert_array_equal(counts.sum(dim=(1, 2)).numpy(), [50, 30, 50])
    torch.testing.assert_close(attention.sum(dim=(1, 2)), found["attention"].sum(dim=1))
    # one cell by hand: the events of sample 0 that fall into cell (row, column) of the first event
    row, column = int(found["row"][0, 0]), int(found["column"][0, 0])
    here = (found["row"][0] == row) & (found["column"][0] == column)
    assert counts[0, row, column] == here.sum()
    torch.testing.assert_close(attention[0, row, column], found["attention"][0][here].sum())


def test_logger_draws_the_first_validation_batch_at_the_epoch_end(tmp_path):
    model = Event2VecClassifier(num_classes=3, sensor_size=list(SENSOR), h=6, w=8, d_model=16, n_head=4)
    logger = TensorBoardLogger(tmp_path, name="e2v")
    trainer = pl.Trainer(logger=logger, enable_progress_bar=False, enable_model_summary=False)
    callback = Event2VecAttentionLogger(n_samples=2)
    callback.setup(trainer, model, "fit")
    model.train()
    callback.on_validation_epoch_start(trainer, model)
    callback.on_validation_batch_end(trainer, model, None, _batch(), 0)
    callback.on_validation_epoch_end(trainer, model)
    assert model.net.training  # the figure's eval mode is undone
    logger.experiment.flush()
    accumulator = EventAccumulator(str(Path(logger.log_dir)), size_guidance={"images": 0})
    accumulator.Reload()
    (event,) = accumulator.Images("val/attention")
    image = np.asarray(Image.open(io.BytesIO(event.encoded_image_string)))
    assert image.std() > 5.0
    with pytest.raises(ValueError, match="set model.t_heads 1"):
        Event2VecAttentionLogger().setup(trainer, Event2VecClassifier(num_classes=3, t_heads=2), "fit")
