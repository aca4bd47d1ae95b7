"""Event2Vec's self-supervised mode and its loading options (the reference's arxiv_v1 flags):
masked tokens predicting their naive-table word, ``embed_pretrained``, ``pretrained`` without the
head, ``learn_head_only``, ``classify_head_zero_init``, and the synthetic pretrain -> finetune pair."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy

from event_lightning.callbacks.host_sync import HostSyncGuard
from event_lightning.checkpoint_reading import CheckpointError
from event_lightning.cli import main
from event_lightning.data.datasets.asl_dvs import ASLDVSDataModule
from event_lightning.data.loading.event_samplers import EventBatch
from event_lightning.data.standins.asl_dvs import SyntheticASLConfig
from event_lightning.metrics.masked_tokens import MaskedTokenAccuracy
from event_lightning.models.event2vec import Event2VecClassifier
from event_lightning.nn.event2vec import Event2VecConfig, MaskedEventNet

CONFIG = Path(__file__).resolve().parents[2] / "config"
SMALL = {"h": 18, "w": 24, "embed": "naive", "d_model": 32, "n_head": 4, "d_feedforward": 64, "n_layers": 1}
TINY = SyntheticASLConfig(num_classes=3, samples_per_class=10, events_per_sample=300)
pytestmark = pytest.mark.filterwarnings(
    "ignore::UserWarning", "ignore::pytorch_lightning.utilities.warnings.PossibleUserWarning"
)


def _batch(b: int = 4, length: int = 60, seed: int = 0) -> EventBatch:
    g = torch.Generator().manual_seed(seed)
    valid = torch.ones(b, length, dtype=torch.bool)
    valid[1, 35:] = False
    return EventBatch(
        x=torch.where(valid, torch.randint(0, 240, (b, length), generator=g), -1),
        y=torch.where(valid, torch.randint(0, 180, (b, length), generator=g), -1),
        t=torch.where(valid, torch.rand(b, length, generator=g).sort(1).values, -1.0),
        p=torch.where(valid, torch.randint(0, 2, (b, length), generator=g), -1),
        valid_mask=valid,
        label=torch.randint(0, 3, (b,), generator=g),
    )


def _inputs(batch: EventBatch) -> tuple[torch.Tensor, ...]:
    return batch.x, batch.y, batch.t, batch.p, batch.valid_mask


def _ssl(**kwargs) -> Event2VecClassifier:
    return _classifier(**{"self_supervised": True, "dropout_sequence": 0.3, **kwargs})


def test_masked_events_predict_their_naive_word_from_the_encoder_output():
    torch.manual_seed(0)
    net = MaskedEventNet(Event2VecConfig(**SMALL, self_supervised=True, dropout_sequence=0.3))
    batch = _batch()
    torch.manual_seed(1)
    logits, target = net(*_inputs(batch))
    assert logits.shape == (4, 60, 2 * 18 * 24 + 1) and target.shape == (4, 60)

    # the same draw, step by step: the mask zeroes tokens before the time is added
    torch.manual_seed(1)
    y = torch.round(batch.y * 18 / 180).long().clamp(0, 17)
    x = torch.round(batch.x * 24 / 240).long().clamp(0, 23)
    p = batch.p.long().clamp(0, 1)
    masked = torch.rand(4, 60) < 0.3
    word = p * 18 * 24 + y * 24 + x
    expected_target = torch.where(masked & batch.valid_mask, word + 1, -1)
    assert torch.equal(target, expected_target)
    assert not (target[~batch.valid_mask] >= 0).any()  # padding is never scored
    table = net.embedding.embed.table.weight
    tokens = torch.where(batch.valid_mask[..., None], table[word + 1], 0.0) * (~masked)[..., None] + batch.t[..., None]
    encoded = net.classifier(tokens, batch.valid_mask)[:, 1:]
    torch.testing.assert_close(logits, encoded @ table.T)


def test_masking_applies_in_evaluation_too_at_the_configured_ratio():
    net = MaskedEventNet(Event2VecConfig(**SMALL, self_supervised=True, dropout_sequence=0.3)).eval()
    batch = _batch(b=16, length=255)
    torch.manual_seed(0)
    with torch.no_grad():
        _, target = net(*_inputs(batch))
    share = (target >= 0).sum() / batch.valid_mask.sum()
    assert 0.25 < float(share) < 0.35


@pytest.mark.parametrize(
    "settings",
    [
        {"embed": "naive2d", "dropout_sequence": 0.3},
        {"embed": "neighbor1d-naive-2-1", "dropout_sequence": 0.3},
        {"embed": "naive", "dropout_sequence": 0.0},
        {"embed": "naive", "dropout_sequence": 0.3, "t_heads": 2},
    ],
)
def test_self_supervised_needs_the_naive_table_one_token_per_event_and_a_mask_ratio(settings):
    with pytest.raises(ValueError, match="self_supervised needs"):
        Event2VecConfig(**{**SMALL, **settings}, self_supervised=True)


def test_loss_is_the_cross_entropy_over_masked_real_events_as_the_reference_selects_them():
    model = _ssl(label_smoothing=0.1)
    batch = _batch()
    torch.manual_seed(3)
    loss = model.training_step(batch, 0)
    torch.manual_seed(3)
    logits, target = model.net(*_inputs(batch))
    chosen = target >= 0  # the reference: boolean selection of the masked positions, then ignore_index -1
    expected = F.cross_entropy(logits[chosen], target[chosen], label_smoothing=0.1)
    torch.testing.assert_close(loss, expected)
    assert chosen.sum() > 0


def test_masked_token_accuracy_equals_torchmetrics_with_ignore_index():
    g = torch.Generator().manual_seed(0)
    ours, theirs = MaskedTokenAccuracy(), MulticlassAccuracy(50, average="micro", ignore_index=-1)
    for _ in range(3):
        logits = torch.randn(64, 50, generator=g)
        anything = torch.randint(-1, 50, (64,), generator=g)  # -1: not scored
        target = torch.where(torch.rand(64, generator=g) < 0.5, logits.argmax(-1), anything)
        ours.update(logits, target)
        theirs.update(logits, target)
    torch.testing.assert_close(ours.compute(), theirs.compute())


def _save(model: Event2VecClassifier, path: Path) -> str:
    torch.save({"state_dict": model.state_dict()}, path)
    return str(path)


def _classifier(**kwargs) -> Event2VecClassifier:
    return Event2VecClassifier(**{"num_classes": 3, **SMALL, **kwargs})


def test_embed_pretrained_copies_the_embedding_only(tmp_path):
    torch.manual_seed(0)
    source = _save(_ssl(), tmp_path / "ssl.ckpt")
    state = torch.load(source)["state_dict"]
    torch.manual_seed(1)
    model = _classifier(embed_pretrained=source)
    model.setup("fit")
    assert torch.equal(model.net.embedding.embed.table.weight, state["net.embedding.embed.table.weight"])
    encoder = "classifier.encoder.layers.0.linear1.weight"
    assert not torch.equal(model.net.state_dict()[encoder], state[f"net.{encoder}"])


@pytest.mark.parametrize("zero_head", [True, False])
def test_pretrained_copies_all_but_the_head_which_keeps_its_initialisation(tmp_path, zero_head):
    torch.manual_seed(0)
    trained = _classifier(num_classes=5)  # another task: its head could not even be loaded
    source = _save(trained, tmp_path / "classifier.ckpt")
    model = _classifier(pretrained=source, classify_head_zero_init=zero_head)
    head = {k: v.clone() for k, v in model.net.classifier.head.state_dict().items()}
    model.setup("fit")
    for key, value in trained.net.state_dict().items():
        if not key.startswith("classifier.head."):
            assert torch.equal(model.net.state_dict()[key], value), key
    assert all(torch.equal(model.net.classifier.head.state_dict()[k], v) for k, v in head.items())
    assert (model.net.classifier.head.weight.abs().sum() == 0) == zero_head


def test_pretrained_from_another_network_is_refused_naming_the_keys(tmp_path):
    source = _save(_classifier(tpe="t2v"), tmp_path / "t2v.ckpt")
    model = _classifier(pretrained=source)
    with pytest.raises(CheckpointError, match="unexpected.*temporal"):
        model.setup("fit")
    wider = _save(_classifier(d_model=64), tmp_path / "wide.ckpt")
    with pytest.raises(CheckpointError, match="does not fit"):
        _classifier(embed_pretrained=wider).setup("fit")


def test_pretrained_weights_are_read_once_so_a_later_stage_keeps_the_trained_ones(tmp_path):
    source = _save(_ssl(), tmp_path / "ssl.ckpt")
    model = _classifier(pretrained=source)
    model.setup("fit")
    with torch.no_grad():
        model.net.embedding.embed.table.weight.add_(1.0)
    trained = model.net.embedding.embed.table.weight.clone()
    model.setup("validate")
    assert torch.equal(model.net.embedding.embed.table.weight, trained)
    missing = _classifier(pretrained=str(tmp_path / "gone.ckpt"))
    missing.setup("validate")  # validate/test restore their own checkpoint afterwards
    with pytest.raises(CheckpointError, match="does not exist"):
        _classifier(pretrained=str(tmp_path / "gone.ckpt")).setup("fit")


def test_learn_head_only_trains_the_head_alone():
    model = _classifier(learn_head_only=True, weight_decay=0.01)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"net.classifier.head.weight", "net.classifier.head.bias"}
    grouped = [p for group in model.parameter_groups() for p in group["params"]]
    assert {id(p) for p in grouped} == {id(model.net.classifier.head.weight), id(model.net.classifier.head.bias)}
    with pytest.raises(ValueError, match="learn_head_only"):
        _ssl(learn_head_only=True)


def test_every_parameter_gets_a_gradient_so_ddp_needs_no_unused_parameter_search():
    model = _ssl()
    loss = model.training_step(_batch(), 0)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def _tiny_data(root: Path) -> ASLDVSDataModule:
    settings = {"synthetic": TINY, "sample_number": 64, "batch_size": 5, "num_workers": 0, "val_repeats": 1}
    return ASLDVSDataModule(root=str(root), **settings)


@pytest.mark.slow
def test_compiled_self_supervised_fit_compiles_one_graph_per_mode(
    tmp_path, quiet_cpu_trainer, aot_eager_compile, dynamo_recompiles
):
    pl.seed_everything(0, verbose=False)
    data = _tiny_data(tmp_path / "asl")
    model = _ssl(offset_t=True, compile=True)
    trainer = quiet_cpu_trainer(max_epochs=2, limit_train_batches=2, precision="bf16-mixed")
    trainer.fit(model, data)
    trainer.validate(model, data, verbose=False)
    assert trainer.num_val_batches == [2]  # batches of 5 and of 1
    assert len(dynamo_recompiles) == 1 and "grad_mode" in dynamo_recompiles[0], dynamo_recompiles


def test_self_supervised_steps_never_wait_on_the_host(tmp_path, quiet_cpu_trainer, host_sync_checked_transfer):
    pl.seed_everything(0, verbose=False)
    data = _tiny_data(tmp_path / "asl")
    checked = host_sync_checked_transfer(data)
    trainer = quiet_cpu_trainer(
        limit_train_batches=2, limit_val_batches=2, num_sanity_val_steps=0, precision="bf16-mixed",
        callbacks=[HostSyncGuard(check_steps=2)],
    )  # fmt: skip
    trainer.fit(_ssl(offset_t=True), data)
    assert len(checked) == 4
    assert torch.isfinite(trainer.callback_metrics["val/loss"]) and 0 <= trainer.callback_metrics["val/acc"] <= 1


@pytest.mark.slow
def test_synthetic_pretrain_then_finetune_starts_from_the_pretrained_weights(tmp_path, monkeypatch, tiny_stand_in_args):
    runs = tmp_path / "runs"
    common = [*tiny_stand_in_args(tmp_path), "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
              "--trainer.limit_val_batches", "1"]  # fmt: skip
    pretrain = main(["fit", "--config", str(CONFIG / "event2vec_pretrain_synthetic.yaml"), *common])
    assert isinstance(pretrain.model.net, MaskedEventNet)
    checkpoint = runs / "event2vec_pretrain_synthetic" / "version_0" / "checkpoints" / "last.ckpt"
    pretrained = torch.load(checkpoint, weights_only=True)["state_dict"]

    at_start: dict[str, torch.Tensor] = {}

    def record(self) -> None:
        at_start.update({k: v.detach().clone() for k, v in self.net.state_dict().items()})

    monkeypatch.setattr(Event2VecClassifier, "on_train_start", record, raising=False)
    finetune_args = ["fit", "--config", str(CONFIG / "event2vec_finetune_synthetic.yaml"), *common,
                     "--model.init_args.pretrained", str(checkpoint)]  # fmt: skip
    finetune = main(finetune_args)
    assert finetune.model.hparams.classify_head_zero_init is True
    network = {k.removeprefix("net."): v for k, v in pretrained.items() if k.startswith("net.")}
    assert "embedding.embed.table.weight" in network and set(network) == set(at_start) - {
        "classifier.head.weight",
        "classifier.head.bias",
    }
    for key, value in network.items():
        assert torch.equal(at_start[key], value), key  # the embedding and the encoder
    assert not at_start["classifier.head.weight"].any() and not at_start["classifier.head.bias"].any()
    assert not torch.equal(finetune.model.net.embedding.embed.table.weight, at_start["embedding.embed.table.weight"])
