"""Event2VecClassifier: parameters, optimiser groups, schedule, losses, every stage option."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from event_lightning.data.loading.event_samplers import EventBatch
from event_lightning.models.event2vec import Event2VecClassifier

# Steps called outside a Trainer: self.log() has nowhere to go, which is fine here.
pytestmark = pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")


def _batch(b: int = 6, length: int = 30, classes: int = 24, seed: int = 0) -> EventBatch:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(b, length, dtype=torch.bool)
    mask[0, 20:] = False
    batch = EventBatch(
        x=torch.randint(0, 240, (b, length), generator=g),
        y=torch.randint(0, 180, (b, length), generator=g),
        t=torch.rand(b, length, generator=g).sort(1).values,
        p=torch.randint(0, 2, (b, length), generator=g),
        valid_mask=mask,
        label=torch.randint(0, classes, (b,), generator=g),
    )
    for field in ("x", "y", "p", "t"):
        getattr(batch, field)[~mask] = -1
    return batch


def test_paper_configuration_parameter_count():
    model = Event2VecClassifier()  # defaults are the paper's ASL-DVS setting
    assert sum(p.numel() for p in model.parameters()) == 1_083_370
    assert model.config.embed == "neighbor1d-naive2d-2-1" and (model.config.h, model.config.w) == (36, 48)
    assert model(_batch()).shape == (6, 24)


def test_sensor_size_link_and_hparams_are_plain():
    model = Event2VecClassifier(num_classes=5, sensor_size=[128, 128, 2], h=32, w=32, d_model=32, n_head=4)
    assert (model.config.width, model.config.height, model.config.polarities) == (128, 128, 2)
    assert all(isinstance(v, int | float | str | bool | list | type(None)) for v in model.hparams.values())


def test_parameter_groups():
    plain = Event2VecClassifier(d_model=32, n_head=4, d_feedforward=32)
    assert len(plain.parameter_groups()) == 1
    model = Event2VecClassifier(d_model=32, n_head=4, d_feedforward=32, weight_decay=0.05)
    decayed, exempt = model.parameter_groups()
    assert decayed["weight_decay"] == 0.05 and exempt["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    exempt_names = {names[id(p)] for p in exempt["params"]}
    decayed_names = {names[id(p)] for p in decayed["params"]}
    assert not exempt_names & decayed_names and len(exempt_names | decayed_names) == len(names)
    assert "net.classifier.class_token" in exempt_names
    assert "net.embedding.embed.table_y.weight" in exempt_names
    assert "net.classifier.encoder.norm.weight" in exempt_names
    assert "net.classifier.head.bias" in exempt_names
    assert "net.classifier.head.weight" in decayed_names
    assert "net.classifier.encoder.layers.0.linear1.weight" in decayed_names
    assert "net.embedding.embed.weight_y" in decayed_names  # as in the reference


def test_cosine_schedule_per_epoch():
    model = Event2VecClassifier(d_model=32, n_head=4, d_feedforward=32)
    model.trainer = pl.Trainer(max_epochs=64, logger=False, enable_checkpointing=False)
    config = model.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    assert config["lr_scheduler"]["interval"] == "epoch"
    assert optimizer.defaults["lr"] == 1e-3 and optimizer.param_groups[0]["weight_decay"] == 0.0
    assert optimizer.defaults["fused"]  # on the CPU as on a GPU
    for _ in range(32):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.5e-3)
    assert (
        Event2VecClassifier(lr_schedule="none", d_model=32, n_head=4).configure_optimizers().__class__.__name__
        == "AdamW"
    )


def test_label_smoothing_in_training_only():
    torch.manual_seed(0)
    model = Event2VecClassifier(d_model=32, n_head=4, d_feedforward=32, label_smoothing=0.3)
    batch = _batch()
    logits = model(batch)
    train_loss = model.training_step(batch, 0)
    val_loss = model.validation_step(batch, 0)
    torch.testing.assert_close(train_loss, F.cross_entropy(logits, batch.label, label_smoothing=0.3))
    torch.testing.assert_close(val_loss, F.cross_entropy(logits, batch.label))
    assert model.val_acc.compute() == (logits.argmax(1) == batch.label).float().mean()


@pytest.mark.parametrize("tpe", ["add", "t2v"])
def test_every_stage_option_trains(tpe):
    torch.manual_seed(0)
    model = Event2VecClassifier(
        d_model=32, n_head=4, d_feedforward=32, n_layers=1, tpe=tpe, t_heads=3, dropout=0.1,
        dropout_sequence=0.2, coordinate_noise_std=1.5, offset_coordinate="sample", offset_t=True,
        classify_head_zero_init=True,
    )  # fmt: skip
    assert torch.all(model.net.classifier.head.weight == 0)
    batch = _batch(length=31)
    model.train()
    loss = model.training_step(batch, 0)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)
    model.eval()
    with torch.no_grad():
        first, second = model(batch), model(batch)
    torch.testing.assert_close(first, second)  # noise and token drop are training-only


def test_predict_step():
    model = Event2VecClassifier(d_model=32, n_head=4, d_feedforward=32, num_classes=7).eval()
    out = model.predict_step(_batch(classes=7), 0)
    torch.testing.assert_close(out["probabilities"].sum(1), torch.ones(6))
    assert out["prediction"].shape == (6,)


def test_bad_options():
    with pytest.raises(ValueError, match="lr_schedule"):
        Event2VecClassifier(lr_schedule="step")
    with pytest.raises(ValueError, match="offset_coordinate"):
        Event2VecClassifier(offset_coordinate="global")
    with pytest.raises(ValueError, match="unknown embedding"):
        Event2VecClassifier(embed="neighbor3d-naive-1-1")


@pytest.mark.parametrize("training", [True, False])
def test_classifier_computes_only_the_class_token_position_of_its_last_layer(training):
    # the full encoder's CLS output, the same logits and gradients: the other positions of the last
    # layer only feed its keys and values
    torch.manual_seed(0)
    net = Event2VecClassifier(d_model=32, n_head=4, d_feedforward=64, n_layers=2, offset_t=True).net.train(training)
    batch = _batch()
    tokens, valid = net.embedding(batch.x, batch.y, batch.t, batch.p, batch.valid_mask)
    classifier = net.classifier

    def gradients(logits: torch.Tensor) -> list[torch.Tensor]:
        return torch.autograd.grad(F.cross_entropy(logits, batch.label), list(net.parameters()), retain_graph=True)

    full = classifier.head(super(type(classifier), classifier).forward(tokens, valid)[:, 0])
    first = classifier(tokens, valid)
    torch.testing.assert_close(first, full, rtol=1e-6, atol=1e-6)
    for a, b in zip(gradients(first), gradients(full), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)

    sequence, mask = classifier.sequence(tokens, valid)
    last = classifier.encoder.layers[-1]
    assert last(sequence, src_key_padding_mask=mask, first_only=True).shape == (6, 1, 32)
    torch.testing.assert_close(
        last(sequence, src_key_padding_mask=mask, first_only=True),
        last(sequence, src_key_padding_mask=mask)[:, :1],
        rtol=1e-6,
        atol=1e-6,
    )
