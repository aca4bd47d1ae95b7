"""Shapes, parameter counts, compute and state handling of the pose networks."""

import pytest
import torch
import torch.nn.functional as F
from spikingjelly.activation_based import neuron, surrogate
from torch import nn

from event_lightning.nn.pose import (
    SNN_LIF_LAYERS,
    SNN_STATE_SOURCES,
    HybridCNNRNN,
    HybridCNNSNN,
    LIFParams,
    PoseUNetCNN,
    RecurrentPoseUNet,
    SpikingPoseUNet,
    xavier_init,
)
from event_lightning.nn.pose.snn_unet import SpikingConvBN

pytestmark = pytest.mark.usefixtures("single_thread")


def _conv(k: int, c_in: int, c_out: int, bias: bool = True) -> int:
    return k * k * c_in * c_out + (c_out if bias else 0)


def _bn(c: int) -> int:
    return 2 * c


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _dense_macs(model: nn.Module, *inputs) -> list[int]:
    """MACs per conv call of one sample, from output shapes on the meta device."""
    macs = []

    def hook(module, args, out):
        k = module.kernel_size[0] * module.kernel_size[1]
        if isinstance(module, nn.ConvTranspose2d):
            macs.append(args[0][0].numel() * module.out_channels * k)
        else:
            macs.append(out[0].numel() * module.in_channels * k)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    with torch.no_grad():
        model(*inputs)
    for handle in handles:
        handle.remove()
    return macs


def test_cnn_parameters_and_compute_match_the_reference_architecture():
    c = 32
    expected = _conv(7, 20, c) + _conv(7, c, c) + _conv(5, c, 2 * c) + _conv(5, 2 * c, 2 * c)
    for c_in, c_out in [(2 * c, 4 * c), (4 * c, 8 * c), (8 * c, 16 * c), (16 * c, 16 * c)]:
        expected += _conv(3, c_in, c_out) + _conv(3, c_out, c_out)
    for c_in, c_out in [(16 * c, 16 * c), (16 * c, 8 * c), (8 * c, 4 * c), (4 * c, 2 * c), (2 * c, c)]:
        expected += _conv(3, c_in, c_out) + _conv(3, 2 * c_out, c_out)
    expected += _conv(3, c, 13)
    cnn = PoseUNetCNN()
    assert _n_params(cnn) == expected == 19_818_669
    macs = sum(_dense_macs(cnn.to("meta"), torch.zeros(1, 20, 256, 256, device="meta")))
    assert macs / 1e9 == pytest.approx(22.6, abs=0.05)


def test_snn_parameters_and_per_layer_macs_match_the_spec():
    c = 32
    convs = [
        (5, 2, c),
        (5, c, 2 * c),
        (5, 2 * c, 4 * c),
        (5, 4 * c, 8 * c),
        (3, 8 * c, 8 * c),
        (3, 8 * c, 8 * c),
    ]
    convs += [(5, 16 * c, 4 * c), (5, 8 * c, 2 * c), (5, 4 * c, c)]
    expected = sum(_conv(k, i, o, bias=False) + _bn(o) for k, i, o in convs) + _conv(1, 2 * c, 13, bias=False)
    assert _n_params(SpikingPoseUNet(tail="conv")) == expected
    assert _n_params(SpikingPoseUNet(tail="integrator")) == expected + _bn(13)
    snn = SpikingPoseUNet().to("meta").eval()
    macs = [m / 1e6 for m in _dense_macs(snn, torch.zeros(1, 1, 2, 256, 256, device="meta"))]
    spec = [104.86, 838.86, 838.86, 838.86, 603.98, 603.98, 6710.89, 6710.89, 6710.89, 54.5]
    assert macs == pytest.approx(spec, abs=0.05)


def test_rnn_parameters():
    c = 32
    expected = _conv(5, 2, c)
    for w in (2 * c, 4 * c, 8 * c):
        expected += _conv(5, w // 2, w, bias=False) + _bn(w) + _conv(3, 2 * w, 4 * w)
    expected += 2 * (2 * (_conv(3, 8 * c, 8 * c, bias=False) + _bn(8 * c)))
    for w in (8 * c, 4 * c, 2 * c):
        expected += _conv(5, w, w // 2, bias=False) + _bn(w // 2)
    expected += _conv(1, c, 13, bias=False) + _bn(13)
    assert _n_params(RecurrentPoseUNet()) == expected


def test_state_init_heads_follow_the_mapping_and_cost_1_28_gmac():
    hybrid = HybridCNNSNN(PoseUNetCNN(), SpikingPoseUNet(tail="conv", lif=LIFParams(tau=3.0)))
    assert set(hybrid.heads) == set(SNN_LIF_LAYERS)
    assert SNN_STATE_SOURCES["res1"] == "up1" and hybrid.heads["res1"].upsample
    assert sum(head.upsample for head in hybrid.heads.values()) == 1
    assert hybrid.heads["res1"].conv1.in_channels == 512 and hybrid.heads["res1"].conv1.out_channels == 256
    cnn_meta = PoseUNetCNN().to("meta")
    _, features = cnn_meta(torch.zeros(1, 20, 256, 256, device="meta"), return_features=True)
    heads = hybrid.heads.to("meta").eval()
    macs = sum(sum(_dense_macs(heads[name], features[SNN_STATE_SOURCES[name]])) for name in SNN_LIF_LAYERS)
    assert macs / 1e9 == pytest.approx(1.28, abs=0.01)


def _small_hybrid(state_init: bool = True, residual: bool = True) -> HybridCNNSNN:
    torch.manual_seed(0)
    cnn = PoseUNetCNN(base_channels=4)
    snn = SpikingPoseUNet(base_channels=4, lif=LIFParams(tau=3.0), tail="conv" if residual else "integrator")
    xavier_init(snn)
    return HybridCNNSNN(cnn, snn, state_init=state_init, residual_output=residual)


def test_shapes_of_every_model_at_a_small_size():
    x_seq = torch.rand(3, 2, 2, 64, 64) * 2
    x_cnn = torch.rand(2, 20, 64, 64)
    assert PoseUNetCNN(base_channels=4)(x_cnn).shape == (2, 13, 64, 64)
    out = SpikingPoseUNet(base_channels=4)(x_seq)
    assert out.out.shape == (3, 2, 13, 64, 64)
    assert out.v_last["down3"].shape == (2, 32, 8, 8) and out.v_last["up1"].shape == (2, 16, 16, 16)
    rnn_out, states = RecurrentPoseUNet(base_channels=4).window(x_seq)
    assert rnn_out.shape == (3, 2, 13, 64, 64) and [s.hidden.shape[1] for s in states] == [8, 16, 32]
    hybrid = _small_hybrid()
    result = hybrid(x_seq, x_cnn)
    assert result.heatmaps.shape == (3, 2, 13, 64, 64) and result.cnn_heatmap.shape == (2, 13, 64, 64)
    assert set(result.final_state) == set(SNN_LIF_LAYERS)
    hybrid_rnn = HybridCNNRNN(PoseUNetCNN(base_channels=4), RecurrentPoseUNet(base_channels=4))
    assert hybrid_rnn(x_seq, x_cnn).heatmaps.shape == (3, 2, 13, 64, 64)


def test_hybrid_output_is_a_decaying_residual_on_the_cnn_heatmap():
    hybrid = _small_hybrid().eval()
    x_seq, x_cnn = torch.rand(4, 1, 2, 32, 32) * 2, torch.rand(1, 20, 32, 32)
    result = hybrid(x_seq, x_cnn)
    cnn_heatmap, features = hybrid.run_cnn(x_cnn)
    increments = hybrid.snn(x_seq, hybrid.initial_states(features)).out
    torch.testing.assert_close(result.heatmaps[0], 0.8 * cnn_heatmap + increments[0])
    torch.testing.assert_close(result.heatmaps[2], 0.8 * result.heatmaps[1] + increments[2])
    torch.testing.assert_close(result.cnn_heatmap, hybrid.cnn(x_cnn))


def test_the_next_windows_frame_shares_the_windows_cnn_call():
    """Training passes the next frame along: its CNN features are those of a call of its own, and
    the window's outputs do not change."""
    hybrid = _small_hybrid().train()
    x_seq, x_cnn, x_next = torch.rand(3, 2, 2, 32, 32) * 2, torch.rand(2, 20, 32, 32), torch.rand(2, 20, 32, 32)
    paired = hybrid(x_seq, x_cnn, x_next)
    alone = hybrid(x_seq, x_cnn)
    assert alone.next_features is None
    torch.testing.assert_close(paired.heatmaps, alone.heatmaps, rtol=1e-6, atol=1e-6)
    _, next_features = hybrid.run_cnn(x_next)
    assert set(paired.next_features) == set(next_features)
    for name, feature in next_features.items():
        torch.testing.assert_close(paired.next_features[name], feature, rtol=1e-6, atol=1e-6)


def test_cnn_inference_gives_the_training_forward_pass():
    """Without a graph the first conv runs channels-last on the CPU: same values to float rounding."""
    cnn = PoseUNetCNN(base_channels=4)
    x = torch.rand(2, 20, 32, 32) * 3
    heatmap, features = cnn(x, return_features=True)
    with torch.no_grad():
        inferred, inferred_features = cnn(x, return_features=True)
    torch.testing.assert_close(inferred, heatmap.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(inferred_features["stem"], features["stem"].detach(), rtol=1e-5, atol=1e-6)
    assert inferred_features["stem"].is_contiguous()


def test_state_is_reset_between_windows():
    """Two calls on the same window give the same result: no potential or accumulator leaks."""
    x_a, x_b = torch.rand(3, 1, 2, 32, 32) * 3, torch.rand(3, 1, 2, 32, 32) * 3
    c_a, c_b = torch.rand(1, 20, 32, 32), torch.rand(1, 20, 32, 32)
    for model in (
        _small_hybrid().eval(),
        HybridCNNRNN(PoseUNetCNN(base_channels=4), RecurrentPoseUNet(base_channels=4)).eval(),
    ):
        first = model(x_a, c_a).heatmaps
        model(x_b, c_b)
        torch.testing.assert_close(model(x_a, c_a).heatmaps, first)
    snn = SpikingPoseUNet(base_channels=4).eval()
    first = snn(x_a).out
    snn(x_b)
    torch.testing.assert_close(snn(x_a).out, first)


def test_ablations_change_what_the_hybrid_does():
    x_seq, x_cnn = torch.rand(3, 1, 2, 32, 32) * 2, torch.rand(1, 20, 32, 32)
    full = _small_hybrid().eval()
    no_init = _small_hybrid(state_init=False).eval()
    no_init.snn.load_state_dict(full.snn.state_dict())
    no_init.cnn.load_state_dict(full.cnn.state_dict())
    assert len(no_init.heads) == 0
    increments = no_init.snn(x_seq).out
    torch.testing.assert_close(no_init(x_seq, x_cnn).heatmaps[0], 0.8 * full.cnn(x_cnn) + increments[0])
    assert not torch.allclose(no_init(x_seq, x_cnn).heatmaps, full(x_seq, x_cnn).heatmaps)
    no_residual = _small_hybrid(residual=False).eval()
    out = no_residual(x_seq, x_cnn)
    v0 = no_residual.initial_states(no_residual.run_cnn(x_cnn)[1])
    torch.testing.assert_close(out.heatmaps, no_residual.snn(x_seq, v0).out)
    with pytest.raises(ValueError, match="tail"):
        HybridCNNSNN(PoseUNetCNN(base_channels=4), SpikingPoseUNet(base_channels=4, tail="integrator"))


def test_cnn_is_frozen_and_stays_in_eval_mode_while_heads_and_snn_train():
    hybrid = _small_hybrid()
    hybrid.train()
    assert not hybrid.cnn.training and hybrid.snn.training and hybrid.heads.training
    x_seq, x_cnn = torch.rand(3, 2, 2, 32, 32) * 3, torch.rand(2, 20, 32, 32)
    result = hybrid(x_seq, x_cnn)
    loss = result.heatmaps.square().mean() + sum(v.square().mean() for v in result.final_state.values())
    loss.backward()
    assert all(p.grad is None for p in hybrid.cnn.parameters())
    assert all(not p.requires_grad for p in hybrid.cnn.parameters())
    assert hybrid.heads["static_conv"].conv1.weight.grad.abs().sum() > 0
    assert hybrid.snn.down1.conv.weight.grad.abs().sum() > 0


class _StepByStepSNN:
    """The reference's evaluation order: one step at a time through spikingjelly LIF nodes."""

    def __init__(self, snn: SpikingPoseUNet) -> None:
        self.snn = snn
        tau = snn.lif_params.tau
        self.nodes = {
            name: neuron.LIFNode(tau=tau, v_reset=None, surrogate_function=surrogate.ATan(alpha=2.0))
            for name in [*SNN_LIF_LAYERS, "tail"]
        }
        self.nodes["tail"].v_threshold = 1e30  # never fires (inf gives 0 * inf = NaN in the reset)

    def run(self, x_seq: torch.Tensor, v0: dict[str, torch.Tensor]) -> torch.Tensor:
        s, up = self.snn, lambda t: F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False)
        for name, node in self.nodes.items():
            node.reset()
            if name in v0:
                node.v = v0[name].clone()

        def block(name, x, extra=0):
            conv = getattr(s, name).conv  # the plain convolution, whatever the layer computes it with
            current = F.conv2d(x, conv.weight, stride=conv.stride, padding=conv.padding)
            return self.nodes[name](getattr(s, name).bn(current) + extra)

        outputs = []
        for x in x_seq:
            a = block("static_conv", x)
            d1 = block("down1", a)
            d2 = block("down2", d1)
            d3 = block("down3", d2)
            r2 = block("res2", block("res1", d3), extra=d3)
            u1 = block("up1", up(torch.cat([r2, d3], 1)))
            u2 = block("up2", up(torch.cat([u1, d2], 1)))
            u3 = block("up3", up(torch.cat([u2, d1], 1)))
            tail = s.tail_bn(F.conv2d(torch.cat([u3, a], 1), s.tail.weight))
            self.nodes["tail"](tail)
            outputs.append(self.nodes["tail"].v.clone())
        return torch.stack(outputs)


@pytest.mark.parametrize("training", [False, True])
def test_layer_by_layer_snn_equals_step_by_step_spikingjelly(training):
    torch.manual_seed(3)
    snn = SpikingPoseUNet(base_channels=4, tail="integrator").double()
    xavier_init(snn)
    x_seq = (torch.rand(4, 2, 2, 32, 32) * 3).double()
    channels = snn.lif_channels()
    v0 = {n: torch.randn(2, c, 32 // f, 32 // f).double() for n, (c, f) in channels.items() if n != "up2"}
    reference_snn = SpikingPoseUNet(base_channels=4, tail="integrator").double()
    reference_snn.load_state_dict(snn.state_dict())
    snn.train(training)
    reference_snn.train(training)
    ours = snn(x_seq, v0).out
    expected = _StepByStepSNN(reference_snn).run(x_seq, v0)
    torch.testing.assert_close(ours, expected)
    if training:  # per-step BatchNorm: same running statistics as the step-by-step loop
        torch.testing.assert_close(snn.down2.bn.running_mean, reference_snn.down2.bn.running_mean)
        torch.testing.assert_close(snn.tail_bn.running_var, reference_snn.tail_bn.running_var)


def test_xavier_init_touches_conv2d_weights_only_and_divides_the_head():
    torch.manual_seed(0)
    cnn = PoseUNetCNN(base_channels=4)
    bias_before = cnn.stem1.bias.clone()
    xavier_init(cnn, head=cnn.head, head_div=2500.0)
    torch.testing.assert_close(cnn.stem1.bias, bias_before)
    fan_std = (2.0 / (4 * 9 + 13 * 9)) ** 0.5
    assert cnn.head.weight.std().item() == pytest.approx(fan_std / 2500, rel=0.3)
    rnn = RecurrentPoseUNet(base_channels=4)
    deconv_before = rnn.decoders[0][0].weight.clone()
    xavier_init(rnn)
    torch.testing.assert_close(rnn.decoders[0][0].weight, deconv_before)


def test_few_channel_conv_gives_the_plain_convolution_with_and_without_an_input_gradient():
    """The first spiking layer's conv runs channels-last on the CPU only when its input needs a
    gradient; both ways it is the plain convolution, values and gradients."""
    layer = SpikingConvBN(2, 8, 5, 1, LIFParams())
    x = torch.rand(4, 2, 16, 16) * 2
    expected = F.conv2d(x, layer.conv.weight, padding=2)
    torch.testing.assert_close(layer._conv(x), expected)
    leaf = x.clone().requires_grad_()
    out = layer._conv(leaf)
    assert out.is_contiguous()
    torch.testing.assert_close(out, expected)
    grad = torch.rand_like(out)
    out.backward(grad)
    reference = x.clone().requires_grad_()
    F.conv2d(reference, layer.conv.weight, padding=2).backward(grad)
    torch.testing.assert_close(leaf.grad, reference.grad)
