"""CPU convolutions of many images run in chunks (event_lightning.nn.pose.conv_chunks)."""

import pytest
import torch
from torch import nn

from event_lightning.nn.pose import SpikingPoseUNet, conv_chunks, xavier_init
from event_lightning.nn.pose.conv_chunks import ChunkedConv2d, chunked_conv, image_chunks
from event_lightning.nn.pose.snn_unet import ChannelMatmulConv2d
from event_lightning.nn.pose.upsample_conv import Upsample2xConv2d


def test_chunks_keep_each_input_under_the_byte_limit_and_split_evenly(monkeypatch):
    monkeypatch.setattr(conv_chunks, "CHUNK_BYTES", 1000)
    assert image_chunks(torch.zeros(20, 1, 10, 10)) == 3  # 8000 bytes: 8 calls of at most 3 images
    assert image_chunks(torch.zeros(20, 1, 5, 5)) == 10  # 2000 bytes: 2 calls
    assert image_chunks(torch.zeros(20, 1, 5, 2)) == 20  # 800 bytes: one call
    assert image_chunks(torch.zeros(3, 1, 2, 2)) == 3
    assert image_chunks(torch.zeros(1, 1, 100, 100)) == 1  # one image is never split
    assert image_chunks(torch.zeros(4, 1, 100, 100, device="meta")) == 4  # off the CPU: one call


def test_the_default_limit_splits_the_bench_up3_layer_in_two_and_keeps_small_layers_whole():
    assert image_chunks(torch.zeros(20, 64, 32, 32)) == 10  # 5.2 MB
    assert image_chunks(torch.zeros(20, 128, 16, 16)) == 20  # 2.6 MB


def test_a_chunked_conv_gives_the_values_and_gradients_of_one_call(monkeypatch):
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False).double()
    x = torch.randn(7, 3, 9, 9, dtype=torch.float64, requires_grad=True)
    whole = conv(x)
    monkeypatch.setattr(conv_chunks, "CHUNK_BYTES", x[0].numel() * 8 * 2)
    chunked = chunked_conv(conv, x)
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-12)
    grad = torch.randn_like(whole)
    ours = torch.autograd.grad(chunked, (x, conv.weight), grad)
    for a, b in zip(ours, torch.autograd.grad(whole, (x, conv.weight), grad), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("limit", [None, 4096])
def test_the_snn_window_is_the_same_in_chunks(monkeypatch, limit):
    torch.manual_seed(1)
    snn = SpikingPoseUNet(base_channels=4, tail="integrator").double()
    xavier_init(snn)
    x_seq = torch.poisson(torch.full((3, 2, 2, 16, 16), 1.0)).double()
    expected = snn(x_seq).out
    expected_grads = torch.autograd.grad(expected.square().sum(), [p for p in snn.parameters()])
    if limit is not None:
        monkeypatch.setattr(conv_chunks, "CHUNK_BYTES", limit)  # every conv input is larger: 2 to 6 images
    out = snn(x_seq).out
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    grads = torch.autograd.grad(out.square().sum(), [p for p in snn.parameters()])
    for a, b in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


def test_the_channel_matmul_tail_is_a_1x1_convolution():
    torch.manual_seed(2)
    tail = ChannelMatmulConv2d(6, 5).double()
    plain = nn.Conv2d(6, 5, 1, bias=False).double()
    plain.load_state_dict(tail.state_dict())
    x = torch.randn(4, 6, 3, 7, dtype=torch.float64, requires_grad=True)
    out, expected = tail(x), plain(x)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    grad = torch.randn_like(out)
    ours = torch.autograd.grad(out, (x, tail.weight), grad)
    for a, b in zip(ours, torch.autograd.grad(expected, (x, plain.weight), grad), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    # given the input's channels in parts, it never builds their concatenation
    parts = tail(x[:, :2], x[:, 2:])
    torch.testing.assert_close(parts, expected, rtol=0, atol=1e-12)
    ours = torch.autograd.grad(parts, (x, tail.weight), grad)
    for a, b in zip(ours, torch.autograd.grad(plain(x), (x, plain.weight), grad), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_the_layers_chunk_inside_their_forward_so_hooks_see_whole_windows(monkeypatch):
    monkeypatch.setattr(conv_chunks, "CHUNK_BYTES", 64)
    for layer in (ChunkedConv2d(2, 3, 3, padding=1), Upsample2xConv2d(2, 3, 5)):
        seen = []
        layer.register_forward_pre_hook(lambda module, args, seen=seen: seen.append(args[0].shape[0]))
        out = layer(torch.rand(6, 2, 4, 4))
        assert seen == [6] and out.shape[0] == 6
