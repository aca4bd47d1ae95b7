"""Event2Vec embeddings and network on hand-built batches."""

from __future__ import annotations

import math

import pytest
import torch

from event_lightning.nn.event2vec import (
    AdditiveTime,
    CoordinateNoise,
    DropSequence,
    Event2VecConfig,
    Event2VecNet,
    MergeTimeHeads,
    Naive2dEmbedding,
    NaiveEmbedding,
    Neighbor1dNaive2dEmbedding,
    Neighbor1dNaiveEmbedding,
    Neighbor2dNaiveEmbedding,
    OffsetCoordinate,
    SpatialDownsample,
    Time2Vec,
    build_embedding,
    parse_embedding,
)

P, H, W = 2, 3, 4


def _numbered(table: torch.nn.Embedding) -> torch.Tensor:
    """Give row r the value r + 0.01 * channel (row 0 stays the zero padding row); return the weights."""
    rows, dim = table.weight.shape
    values = torch.arange(rows, dtype=torch.float32)[:, None] + 0.01 * torch.arange(dim, dtype=torch.float32)
    values[0] = 0
    with torch.no_grad():
        table.weight.copy_(values)
    return values


# Three events and one padding slot: (p, y, x) = (0, 0, 0), (1, 2, 3), (1, 1, 0), padding.
p = torch.tensor([[0, 1, 1, -1]])
y = torch.tensor([[0, 2, 1, -1]])
x = torch.tensor([[0, 3, 0, -1]])
valid = torch.tensor([[True, True, True, False]])


def test_parse_embedding():
    assert parse_embedding("neighbor1d-naive2d-2-1").kind == "neighbor1d-naive2d"
    assert parse_embedding("neighbor2d-naive-3-2").n_neighbor == 3
    assert parse_embedding("neighbor2d-naive-3-2").dilation == 2
    for bad in ("naive3d", "neighbor1d-naive2d-2", "neighbor1d-naive2d-2-0", "neighbor3d-naive-1-1"):
        with pytest.raises(ValueError, match="unknown embedding"):
            parse_embedding(bad)


def test_naive_lookup_and_padding_row():
    embedding = NaiveEmbedding(P, H, W, d=3)
    assert embedding.table.weight.shape == (P * H * W + 1, 3)
    assert torch.all(embedding.table.weight[0] == 0)  # zero padding row at init
    values = _numbered(embedding.table)
    out = embedding(p, y, x, valid)
    for slot, index in enumerate([0, 1 * 12 + 2 * 4 + 3, 1 * 12 + 1 * 4 + 0]):
        torch.testing.assert_close(out[0, slot], values[index + 1])
    assert torch.all(out[0, 3] == 0)
    out.sum().backward()
    assert torch.all(embedding.table.weight.grad[0] == 0)  # padding receives no gradient


def test_naive2d_split_and_lookup():
    embedding = Naive2dEmbedding(P, H, W, d=14)
    assert embedding.d_y == int(3 / 7 * 14) and embedding.d_y + embedding.d_x == 14
    vy, vx = _numbered(embedding.table_y), _numbered(embedding.table_x)
    out = embedding(p, y, x, valid)
    # event (1, 2, 3): y word 1 * 3 + 2, x word 1 * 4 + 3
    torch.testing.assert_close(out[0, 1], torch.cat([vy[5 + 1], vx[7 + 1]]))
    assert torch.all(out[0, 3] == 0)
    paper = Naive2dEmbedding(2, 36, 48, 256)
    assert (paper.d_y, paper.d_x) == (109, 147)
    assert paper.table_y.weight.shape == (73, 109) and paper.table_x.weight.shape == (97, 147)


def test_neighbor1d_naive2d_weighting_and_border_clamp():
    embedding = Neighbor1dNaive2dEmbedding(P, H, W, d=14, n_neighbor=1, dilation=1)
    c = torch.tensor([math.exp(-0.5), 1.0, math.exp(-0.5)])
    torch.testing.assert_close(embedding.weight_y.data, c)
    torch.testing.assert_close(embedding.weight_x.data, c)
    vy, vx = _numbered(embedding.table_y), _numbered(embedding.table_x)
    out = embedding(p, y, x, valid)
    # event (0, 0, 0): y neighbours clamp(-1, 0, 1) = 0, 0, 1; x neighbours 0, 0, 1.
    expected_y = c[0] * vy[1] + c[1] * vy[1] + c[2] * vy[2]
    expected_x = c[0] * vx[1] + c[1] * vx[1] + c[2] * vx[2]
    torch.testing.assert_close(out[0, 0], torch.cat([expected_y, expected_x]))
    # event (1, 2, 3) sits on the far border in both axes: neighbours 1, 2, 2 and 2, 3, 3.
    expected_y = c[0] * vy[3 + 1 + 1] + (c[1] + c[2]) * vy[3 + 2 + 1]
    expected_x = c[0] * vx[4 + 2 + 1] + (c[1] + c[2]) * vx[4 + 3 + 1]
    torch.testing.assert_close(out[0, 1], torch.cat([expected_y, expected_x]))
    assert torch.all(out[0, 3] == 0)
    out.sum().backward()
    assert embedding.weight_y.grad is not None and torch.all(embedding.table_y.weight.grad[0] == 0)


def test_neighbor1d_naive2d_dilation_and_paper_weights():
    embedding = Neighbor1dNaive2dEmbedding(2, 36, 48, 256, n_neighbor=2, dilation=2)
    torch.testing.assert_close(embedding.weight_y.data, torch.tensor([0.1353353, 0.6065307, 1.0, 0.6065307, 0.1353353]))
    vy = _numbered(embedding.table_y)
    _numbered(embedding.table_x)
    out = embedding(torch.tensor([[1]]), torch.tensor([[10]]), torch.tensor([[20]]), torch.tensor([[True]]))
    c = embedding.weight_y.data
    expected = sum(c[i] * vy[36 + 10 + k + 1] for i, k in enumerate((-4, -2, 0, 2, 4)))
    torch.testing.assert_close(out[0, 0, :109], expected)


def test_neighbor1d_naive_moves_y_and_x_together():
    embedding = Neighbor1dNaiveEmbedding(P, H, W, d=2, n_neighbor=1)
    values = _numbered(embedding.table)
    c = embedding.weight.data
    out = embedding(p, y, x, valid)
    # event (1, 1, 0): diagonal neighbours (0, 0), (1, 0), (2, 1) after clamping x at 0.
    words = [12 + 0 * 4 + 0, 12 + 1 * 4 + 0, 12 + 2 * 4 + 1]
    torch.testing.assert_close(out[0, 2], sum(ci * values[w + 1] for ci, w in zip(c, words, strict=True)))
    assert torch.all(out[0, 3] == 0)


def test_neighbor2d_naive_grid():
    embedding = Neighbor2dNaiveEmbedding(P, H, W, d=2, n_neighbor=1)
    k = torch.tensor([-1.0, 0.0, 1.0])
    torch.testing.assert_close(embedding.weight.data, torch.exp(-(k[:, None] ** 2 + k[None, :] ** 2) / 2).flatten())
    values = _numbered(embedding.table)
    out = embedding(p, y, x, valid)
    # event (1, 1, 0): rows 0..2, columns clamp(-1..1) = 0, 0, 1; weights dy-major.
    expected = torch.zeros(2)
    for i, dy in enumerate((-1, 0, 1)):
        for j, dx in enumerate((-1, 0, 1)):
            word = 12 + (1 + dy) * 4 + min(max(0 + dx, 0), 3)
            expected += embedding.weight.data[i * 3 + j] * values[word + 1]
    torch.testing.assert_close(out[0, 2], expected)
    assert torch.all(out[0, 3] == 0)


def test_spatial_downsample_rounds_and_clamps():
    down = SpatialDownsample(180, 240, 36, 48)
    ys, xs = down(torch.tensor([[0, 2, 3, 179, -1]]), torch.tensor([[0, 2, 3, 239, -1]]))
    # round(y / 5): 0.4 -> 0, 0.6 -> 1, 35.8 -> 36 clamped to 35; padding -1 -> 0.
    assert ys.tolist() == [[0, 0, 1, 35, 0]] and xs.tolist() == [[0, 0, 1, 47, 0]]
    full = SpatialDownsample(180, 240, 180, 240)
    ys, xs = full(torch.tensor([[5, 180, 1000, -3]]), torch.tensor([[7, 240, 5000, -9]]))
    assert ys.tolist() == [[5, 179, 179, 0]] and xs.tolist() == [[7, 239, 239, 0]]
    with pytest.raises(ValueError, match="must lie in"):
        SpatialDownsample(180, 240, 200, 240)


def test_full_resolution_out_of_range_events_do_not_crash():
    net = Event2VecNet(Event2VecConfig(h=180, w=240, embed="naive", d_model=16, n_head=2, d_feedforward=16))
    big = torch.tensor([[239, 240, 10_000, -7]])
    logits = net(big, big, torch.zeros(1, 4), torch.tensor([[0, 1, 5, 1]]), torch.ones(1, 4, dtype=torch.bool))
    assert torch.isfinite(logits).all()


def test_paper_parameter_count():
    net = Event2VecNet(Event2VecConfig())  # neighbor1d-naive2d-2-1, add, 36x48, 24 classes
    assert sum(p.numel() for p in net.parameters()) == 1_083_370
    assert sum(p.numel() for p in net.embedding.parameters()) == 73 * 109 + 97 * 147 + 10
    assert sum(p.numel() for p in Event2VecNet(Event2VecConfig(tpe="t2v")).parameters()) == 1_083_370 + 512
    naive = Event2VecNet(Event2VecConfig(embed="naive"))
    assert sum(p.numel() for p in naive.parameters()) == 1_083_370 - 22_226 + (2 * 36 * 48 + 1) * 256


def test_temporal_encodings():
    tokens = torch.randn(2, 3, 4)
    t = torch.tensor([[0.0, 0.5, 1.0], [0.0, 0.25, -1.0]])
    torch.testing.assert_close(AdditiveTime()(t, tokens), tokens + t[..., None])
    t2v = Time2Vec(4)
    code = t2v(t, torch.zeros(2, 3, 4))
    linear = t[..., None] * t2v.linear.weight[:, 0] + t2v.linear.bias
    torch.testing.assert_close(code[..., 0], linear[..., 0])
    torch.testing.assert_close(code[..., 1:], torch.sin(linear[..., 1:]))
    with pytest.raises(ValueError, match="tpe"):
        Event2VecNet(Event2VecConfig(tpe="sinusoidal"))


def test_merge_time_heads():
    merge = MergeTimeHeads(2)
    t = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0]])
    mask = torch.tensor([[True, True, True, False, False]])
    # padded to 6 and cut into [1, 2, 3] and [4, 5, pad]: slot j averages positions j and j + 3.
    torch.testing.assert_close(merge.merge_time(t, mask), torch.tensor([[1.0, 2.0, 3.0]]))
    mask = torch.tensor([[True, True, True, True, False]])
    torch.testing.assert_close(merge.merge_time(t, mask), torch.tensor([[2.5, 2.0, 3.0]]))
    tokens = torch.arange(10.0).reshape(1, 5, 2)
    merged = merge.merge_tokens(tokens, mask)
    torch.testing.assert_close(merged[0, 0], (tokens[0, 0] + tokens[0, 3]) / 2)
    assert merge.merge_valid(torch.tensor([[True, False, False, False]])).tolist() == [[True, False]]
    empty = merge.merge_tokens(tokens, torch.zeros(1, 5, dtype=torch.bool))
    assert torch.all(empty == 0)


def test_offset_coordinate_sample_and_batch():
    ys = torch.tensor([[5, 7, -1], [2, 3, 9]])
    xs = torch.tensor([[10, 4, -1], [8, 6, 1]])
    mask = torch.tensor([[True, True, False], [True, True, False]])
    y1, x1 = OffsetCoordinate("sample")(ys, xs, mask)
    assert y1[:, :2].tolist() == [[0, 2], [0, 1]] and x1[:, :2].tolist() == [[6, 0], [2, 0]]
    y2, x2 = OffsetCoordinate("batch")(ys, xs, mask)
    assert y2[:, :2].tolist() == [[3, 5], [0, 1]] and x2[:, :2].tolist() == [[6, 0], [4, 2]]
    assert ys.tolist() == [[5, 7, -1], [2, 3, 9]]  # inputs untouched


def test_coordinate_noise_and_drop_sequence():
    noise = CoordinateNoise(std=3.0, h=10, w=10)
    ys, xs = torch.tensor([[0, 5, 9], [1, 2, 3]]), torch.tensor([[9, 5, 0], [4, 5, 6]])
    noise.eval()
    assert noise(ys, xs)[0] is ys
    noise.train()
    torch.manual_seed(3)
    shifted_y, shifted_x = noise(ys, xs)
    assert shifted_y.min() >= 0 and shifted_y.max() <= 9 and shifted_x.min() >= 0 and shifted_x.max() <= 9
    interior = (ys > 3) & (ys < 6)  # far from the border the whole batch moves by one shift
    assert len(set((shifted_y - ys)[interior].tolist())) == 1
    drop = DropSequence(0.5)
    tokens = torch.ones(4, 50, 3)
    drop.eval()
    assert torch.equal(drop(tokens), tokens)
    drop.train()
    out = drop(tokens)
    row_sums = out.sum(-1)
    assert set(row_sums.unique().tolist()) == {0.0, 3.0}
    assert 0.2 < (row_sums == 0).float().mean() < 0.8


def _batch(seed: int = 0, b: int = 3, length: int = 20):
    g = torch.Generator().manual_seed(seed)
    xs = torch.randint(0, 240, (b, length), generator=g)
    ys = torch.randint(0, 180, (b, length), generator=g)
    ps = torch.randint(0, 2, (b, length), generator=g)
    ts = torch.rand(b, length, generator=g).sort(1).values
    mask = torch.ones(b, length, dtype=torch.bool)
    mask[1, 12:] = False
    mask[2, :] = False  # an empty sample: only the CLS token is attended
    for v, pad in ((xs, -1), (ys, -1), (ps, -1), (ts, -1.0)):
        v[~mask] = pad
    return xs, ys, ts, ps, mask


@pytest.mark.parametrize(
    "embed", ["naive", "naive2d", "neighbor1d-naive-1-1", "neighbor1d-naive2d-2-1", "neighbor2d-naive-1-2"]
)
def test_network_ignores_padding(embed):
    torch.manual_seed(0)
    config = Event2VecConfig(embed=embed, d_model=32, n_head=4, d_feedforward=32, num_classes=5, offset_t=True)
    net = Event2VecNet(config).eval()
    xs, ys, ts, ps, mask = _batch()
    logits = net(xs, ys, ts, ps, mask)
    assert logits.shape == (3, 5) and torch.isfinite(logits).all()
    # Other values in the padded slots, and a longer padded batch, change nothing.
    junk = [v.clone() for v in (xs, ys, ts, ps)]
    for v in junk:
        v[~mask] = 7
    torch.testing.assert_close(net(*junk, mask), logits)
    longer = [torch.cat([v, torch.full((3, 5), -1, dtype=v.dtype)], 1) for v in (xs, ys, ts, ps)]
    longer_mask = torch.cat([mask, torch.zeros(3, 5, dtype=torch.bool)], 1)
    torch.testing.assert_close(net(*longer, longer_mask), logits, atol=1e-5, rtol=1e-5)
    # offset_t: a constant shift of the timestamps changes nothing
    torch.testing.assert_close(net(xs, ys, ts + 0.3, ps, mask)[:2], logits[:2], atol=1e-5, rtol=1e-5)


def test_build_embedding_types():
    assert isinstance(build_embedding("neighbor1d-naive2d-2-1", 2, 36, 48, 256), Neighbor1dNaive2dEmbedding)
    assert isinstance(build_embedding("neighbor2d-naive-1-1", 2, 36, 48, 256), Neighbor2dNaiveEmbedding)
