"""The up layers' convolution of a bilinearly upsampled input, computed at the low resolution."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from event_lightning.nn.pose import upsample_conv
from event_lightning.nn.pose.snn_unet import _batchnorm_steps_at_once, batchnorm_per_step
from event_lightning.nn.pose.upsample_conv import FOLD_MIN_SIZE, Upsample2xConv2d, upsample2x_conv2d


def _upsampled_conv(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    up = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    return F.conv2d(up, weight, padding=weight.shape[-1] // 2)


SIZES = [(1, 3), (2, 5), (5, 2), (8, 8), (11, 6)]
KERNELS = [1, 3, 5, 7]
# inputs the kernel reaches past on both sides at once are refused (test below), not compared
COMPARED = [(kernel, size) for kernel in KERNELS for size in SIZES if 2 * min(size) >= kernel // 2]


@pytest.mark.parametrize(("kernel", "size"), COMPARED)
def test_values_and_gradients_equal_the_upsampled_convolution(kernel, size):
    generator = torch.Generator().manual_seed(kernel * 100 + size[0] * 10 + size[1])
    x = torch.randn(3, 4, *size, dtype=torch.float64, generator=generator, requires_grad=True)
    weight = torch.randn(5, 4, kernel, kernel, dtype=torch.float64, generator=generator, requires_grad=True)
    expected = _upsampled_conv(x, weight)
    out = upsample2x_conv2d(x, weight)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    grad = torch.randn(expected.shape, dtype=torch.float64, generator=generator)
    ours = torch.autograd.grad(out, (x, weight), grad)
    theirs = torch.autograd.grad(expected, (x, weight), grad)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-11)


def test_the_module_is_a_conv2d_with_its_parameters_and_hooks():
    torch.manual_seed(0)
    layer = Upsample2xConv2d(6, 3, 5)
    plain = nn.Conv2d(6, 3, 5, padding=2, bias=False)
    assert layer.state_dict().keys() == plain.state_dict().keys()
    plain.load_state_dict(layer.state_dict())
    seen = []
    layer.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape))
    x = torch.rand(2, 6, 4, 4)
    torch.testing.assert_close(layer(x), plain(F.interpolate(x, scale_factor=2, mode="bilinear")), rtol=1e-5, atol=1e-5)
    assert seen == [torch.Size([2, 6, 4, 4])]  # hooks see the low-resolution input
    with pytest.raises(ValueError, match="odd"):
        Upsample2xConv2d(6, 3, 4)


@pytest.mark.parametrize("side", [FOLD_MIN_SIZE // 2, FOLD_MIN_SIZE - 1, FOLD_MIN_SIZE])
def test_the_module_folds_inputs_from_the_minimum_size_on_and_upsamples_smaller_ones(monkeypatch, side):
    torch.manual_seed(side)
    layer = Upsample2xConv2d(3, 2, 5).double()
    x = torch.randn(2, 3, side, side + 1, dtype=torch.float64, requires_grad=True)
    folded = []
    monkeypatch.setattr(upsample_conv, "upsample2x_conv2d", lambda *a: folded.append(1) or upsample2x_conv2d(*a))
    out = layer(x)
    assert len(folded) == (side >= FOLD_MIN_SIZE)
    expected = _upsampled_conv(x, layer.weight)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    grad = torch.randn_like(out)
    ours = torch.autograd.grad(out, (x, layer.weight), grad)
    for a, b in zip(ours, torch.autograd.grad(expected, (x, layer.weight), grad), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-11)


def test_under_bf16_autocast_the_convolutions_run_in_bf16_from_float32_kernels():
    torch.manual_seed(0)
    x = torch.rand(2, 8, 6, 6, requires_grad=True)
    weight = (torch.randn(4, 8, 5, 5) * 0.1).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = upsample2x_conv2d(x, weight)
        expected = _upsampled_conv(x, weight)
    assert out.dtype == expected.dtype == torch.bfloat16
    full = _upsampled_conv(x, weight)
    torch.testing.assert_close(out.float(), full, rtol=0.02, atol=0.02)
    # the backward pass runs the convolutions in bf16 too, and gives float32 gradients
    grad = torch.randn(full.shape)
    ours = torch.autograd.grad(out, (x, weight), grad.bfloat16())
    theirs = torch.autograd.grad(full, (x, weight), grad)
    for a, b in zip(ours, theirs, strict=True):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b, rtol=0.05, atol=0.05 * b.abs().max().item())


def test_cpu_training_batchnorm_per_step_equals_the_all_steps_form_of_accelerators():
    torch.manual_seed(0)
    x_seq = torch.randn(4, 3, 5, 6, 6, dtype=torch.float64) * 2 + 1
    stepped, at_once = nn.BatchNorm2d(5).double(), nn.BatchNorm2d(5).double()
    with torch.no_grad():
        stepped.weight.uniform_(0.5, 1.5)
        stepped.bias.uniform_(-1, 1)
    at_once.load_state_dict(stepped.state_dict())
    torch.testing.assert_close(batchnorm_per_step(stepped, x_seq), _batchnorm_steps_at_once(at_once, x_seq))
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(stepped, name), getattr(at_once, name))


def test_an_input_smaller_than_the_kernels_reach_is_refused():
    x = torch.zeros(1, 4, 1, 3)
    weight = torch.zeros(5, 4, 7, 7)
    with pytest.raises(ValueError, match="1x3 input is too small for a 7x7 kernel"):
        upsample2x_conv2d(x, weight)
