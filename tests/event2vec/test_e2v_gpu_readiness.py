"""Event2Vec on the GPU path, proven on the CPU proxies: no host syncs in a step, float32 time
under autocast, the encoder layer without its fused inference kernel, compiled without
recompiles. Its 2-process DDP check (replicas equal) is tests/gpu/test_ddp_ranks.py's
``event2vec_synthetic`` case."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from event_lightning.callbacks.host_sync import HostSyncGuard
from event_lightning.data.datasets.asl_dvs import ASLDVSDataModule
from event_lightning.data.loading.event_samplers import EventBatch
from event_lightning.data.standins.asl_dvs import SyntheticASLConfig
from event_lightning.models.event2vec import Event2VecClassifier
from event_lightning.nn.event2vec import Event2VecConfig, Event2VecNet, PostNormEncoderLayer
from event_lightning.nn.event2vec.embedding import Neighbor1dNaive2dEmbedding

# 3 letters x 10 recordings: 24 train (batches of 5, drop_last), 6 held out -> val batches of 5 and 1
TINY = SyntheticASLConfig(num_classes=3, samples_per_class=10, events_per_sample=300)
pytestmark = pytest.mark.filterwarnings(
    "ignore::UserWarning", "ignore::pytorch_lightning.utilities.warnings.PossibleUserWarning"
)


@pytest.fixture(scope="module")
def asl_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("asl_gpu")


def _data(root: Path, **kwargs) -> ASLDVSDataModule:
    settings = {"synthetic": TINY, "sample_number": 64, "batch_size": 5, "num_workers": 0, "val_repeats": 1, "seed": 0}
    return ASLDVSDataModule(root=str(root), **{**settings, **kwargs})


def _model(**kwargs) -> Event2VecClassifier:
    settings = {"num_classes": 3, "h": 18, "w": 24, "d_model": 32, "n_head": 4, "d_feedforward": 64, "n_layers": 1}
    return Event2VecClassifier(**{**settings, "offset_t": True, **kwargs})


def _tokens_batch(b: int = 4, length: int = 255, seed: int = 0) -> EventBatch:
    """A batch as the network reads it: 2 * 255 distinct normalised times, some padding."""
    g = torch.Generator().manual_seed(seed)
    valid = torch.ones(b, length, dtype=torch.bool)
    valid[1, 200:] = False
    t = torch.randperm(b * length, generator=g)[: b * length].float().view(b, length).sort(1).values / (b * length)
    return EventBatch(
        x=torch.randint(0, 240, (b, length), generator=g, dtype=torch.int16),
        y=torch.randint(0, 180, (b, length), generator=g, dtype=torch.int16),
        t=torch.where(valid, t, -1.0),
        p=torch.randint(0, 2, (b, length), generator=g, dtype=torch.int8),
        valid_mask=valid,
        label=torch.randint(0, 24, (b,), generator=g),
    )


def test_training_validation_and_the_batch_transfer_never_wait_on_the_host(
    asl_root, quiet_cpu_trainer, host_sync_checked_transfer
):
    pl.seed_everything(0, verbose=False)
    data = _data(asl_root)
    checked = host_sync_checked_transfer(data)
    trainer = quiet_cpu_trainer(
        limit_train_batches=2, limit_val_batches=2, num_sanity_val_steps=0, precision="bf16-mixed",
        callbacks=[HostSyncGuard(check_steps=2)],
    )  # fmt: skip
    trainer.fit(_model(), data)
    assert len(checked) == 4  # 2 training, 2 validation batches
    assert torch.isfinite(trainer.callback_metrics["val/loss"])


def test_encoder_layer_is_the_stock_layer_without_its_fused_inference_kernel():
    torch.manual_seed(0)
    settings = {"d_model": 32, "nhead": 4, "dim_feedforward": 64, "dropout": 0.0, "batch_first": True}
    ours = nn.TransformerEncoder(PostNormEncoderLayer(**settings), 2, norm=nn.LayerNorm(32), enable_nested_tensor=False)
    stock = nn.TransformerEncoder(
        nn.TransformerEncoderLayer(**settings), 2, norm=nn.LayerNorm(32), enable_nested_tensor=False
    )
    assert ours.state_dict().keys() == stock.state_dict().keys()
    stock.load_state_dict(ours.state_dict())
    tokens = torch.randn(5, 40, 32)
    ignore = torch.zeros(5, 40, dtype=torch.bool)
    ignore[1, 9:] = True
    ignore[3, 1:] = True
    # training: the stock layer's own composite path, bit for bit
    assert torch.equal(ours(tokens, src_key_padding_mask=ignore), stock(tokens, src_key_padding_mask=ignore))
    ours.eval()
    stock.eval()
    with torch.no_grad():  # the stock layer switches to its fused kernel here; ours does not
        torch.testing.assert_close(
            ours(tokens, src_key_padding_mask=ignore), stock(tokens, src_key_padding_mask=ignore), rtol=1e-5, atol=1e-5
        )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_neighbour_lookup_equals_the_per_event_einsum_it_replaces(dtype):
    # float32: the same tokens; float64: also the same gradients, where summation order cannot hide a difference
    torch.manual_seed(0)
    embedding = Neighbor1dNaive2dEmbedding(2, 36, 48, 256, n_neighbor=2).to(dtype)
    with torch.no_grad():
        embedding.weight_y.normal_()
        embedding.weight_x.normal_()
    b, length = 8, 255
    p, y, x = torch.randint(0, 2, (b, length)), torch.randint(0, 36, (b, length)), torch.randint(0, 48, (b, length))
    valid = torch.rand(b, length) > 0.1
    k = torch.arange(-2, 3)
    rows_y = torch.where(valid[..., None], p[..., None] * 36 + (y[..., None] + k).clamp(0, 35) + 1, 0)
    rows_x = torch.where(valid[..., None], p[..., None] * 48 + (x[..., None] + k).clamp(0, 47) + 1, 0)
    reference = torch.cat(
        (
            torch.einsum("blkd,k->bld", embedding.table_y(rows_y), embedding.weight_y),
            torch.einsum("blkd,k->bld", embedding.table_x(rows_x), embedding.weight_x),
        ),
        dim=-1,
    )
    tokens = embedding(p, y, x, valid)
    torch.testing.assert_close(tokens, reference, rtol=1e-6, atol=1e-6)
    if dtype == torch.float64:
        upstream = torch.randn_like(tokens)
        names, parameters = zip(*embedding.named_parameters(), strict=True)
        ours = dict(zip(names, torch.autograd.grad((tokens * upstream).sum(), parameters), strict=True))
        for name, want in zip(names, torch.autograd.grad((reference * upstream).sum(), parameters), strict=True):
            torch.testing.assert_close(ours[name], want, rtol=1e-12, atol=1e-12, msg=name)
        assert not ours["table_y.weight"][0].any() and not ours["table_x.weight"][0].any()  # padding rows learn nothing


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_times_and_tokens_stay_float32_under_autocast_while_the_transformer_runs_low(dtype):
    torch.manual_seed(0)
    net = Event2VecNet(Event2VecConfig(d_model=64, n_head=4, d_feedforward=128, num_classes=24, offset_t=True))
    batch = _tokens_batch()
    inputs = (batch.x, batch.y, batch.t, batch.p, batch.valid_mask)
    reached = []
    hook = net.embedding.temporal.register_forward_pre_hook(lambda m, args: reached.append(args))
    with torch.no_grad():
        tokens, _ = net.embedding(*inputs)
        with torch.autocast("cpu", dtype=dtype):
            mixed_tokens, _ = net.embedding(*inputs)
        hook.remove()
        # the times and the tokens they are added to reach the temporal encoding in float32 (in bf16
        # the 965 distinct times of this batch would collapse to a few hundred), and its output is
        # the float32 one bit for bit
        assert [tensor.dtype for args in reached for tensor in args] == [torch.float32] * 4
        valid = batch.valid_mask
        assert torch.equal(reached[1][0][valid], (batch.t - batch.t[:, :1])[valid])
        assert mixed_tokens.dtype == torch.float32 and torch.equal(mixed_tokens, tokens)

        seen = []
        hook = net.classifier.encoder.layers[0].linear1.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
        logits = net(*inputs)
        with torch.autocast("cpu", dtype=dtype):
            mixed_logits = net(*inputs)
        hook.remove()
    assert seen == [torch.float32, dtype]  # the matrix products do run in the low precision
    drift = (mixed_logits.float() - logits).abs().max() / logits.abs().max()
    assert drift < 0.02, f"{dtype} logits differ from float32 by {drift:.2%} of their range"


def test_fp16_training_step_with_a_grad_scaler_as_the_reference_trained():
    """16-mixed: fp16 autocast and a GradScaler (Lightning's on a GPU; on a CPU Lightning turns
    16-mixed into bf16-mixed, so the step is driven by hand here)."""
    torch.manual_seed(0)
    model = _model(num_classes=24)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    batch = _tokens_batch(b=8)
    before = [p.detach().clone() for p in model.parameters()]
    with torch.autocast("cpu", dtype=torch.float16):
        loss = F.cross_entropy(model(batch), batch.label)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    assert scaler.get_scale() == 2.0**16  # no overflow: the step was taken
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


@pytest.mark.slow
def test_compiled_equals_eager_and_compiles_one_graph_per_mode(
    asl_root, quiet_cpu_trainer, aot_eager_compile, dynamo_recompiles
):
    """bf16-mixed as Lightning runs it. Training and evaluation compile one graph each; the rest of
    the run (later steps, a last validation batch of 1, a second epoch, a separate ``validate``
    under inference mode) reuses them."""
    pl.seed_everything(0, verbose=False)
    data = _data(asl_root)
    data.setup("fit")
    batch = data.on_after_batch_transfer(next(iter(data.train_dataloader())), 0)
    eager, compiled = _model(), _model(compile=True)
    compiled.load_state_dict(eager.state_dict())
    compiled.configure_model()
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False)  # Lightning's bf16-mixed
    with autocast:
        want, got = eager(batch), compiled(batch)
    torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-3)
    F.cross_entropy(want.float(), batch.label).backward()
    F.cross_entropy(got.float(), batch.label).backward()
    for (name, a), b in zip(eager.named_parameters(), compiled.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-3, atol=1e-4, msg=name)
    eager.eval()
    compiled.eval()
    with torch.no_grad(), autocast:
        torch.testing.assert_close(compiled(batch), eager(batch), rtol=1e-3, atol=1e-3)
    assert len(dynamo_recompiles) == 1 and "grad_mode" in dynamo_recompiles[0]  # the evaluation graph

    compiled.train()
    trainer = quiet_cpu_trainer(max_epochs=2, limit_train_batches=2, precision="bf16-mixed")
    trainer.fit(compiled, data)
    trainer.validate(compiled, data, verbose=False)
    assert trainer.num_val_batches == [2]  # 6 held-out recordings: batches of 5 and of 1
    assert len(dynamo_recompiles) == 1, dynamo_recompiles[1:]
