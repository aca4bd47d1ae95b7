"""The LIF classifier LightningModule: decoding, padding mask, learning-rate schedule, compile."""

from types import SimpleNamespace

import pytest
import torch

from event_lightning.models.lif_classifier import LIFClassifier


def _batch(t=12, b=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    frames = (torch.rand(t, b, 2, 6, 5, generator=generator) < 0.2).float()
    return frames, torch.tensor([t, t - 3, 5, t][:b]), torch.arange(b) % 3


def test_log_probabilities_and_padding_mask():
    torch.manual_seed(0)
    model = LIFClassifier([5, 6, 2], 3, hidden_features=16, v_th=0.1)
    frames, lengths, _ = _batch()
    log_probs = model(frames, lengths)
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(4))
    # a sample's output depends on its valid steps only: padding it further changes nothing
    longer = torch.cat([frames, torch.zeros(6, *frames.shape[1:])])
    torch.testing.assert_close(model(longer, lengths), log_probs)
    # the tutorial's unmasked max does look at the padding
    unmasked = LIFClassifier([5, 6, 2], 3, hidden_features=16, v_th=0.1, mask_padding=False)
    unmasked.load_state_dict(model.state_dict())
    voltages = model.net(longer)
    torch.testing.assert_close(unmasked(longer, lengths), torch.log_softmax(voltages.max(0).values, -1))


def test_bad_hyperparameters_name_the_key():
    with pytest.raises(ValueError, match="model.num_classes must be >= 2"):
        LIFClassifier([5, 6, 2], 1)
    with pytest.raises(ValueError, match="model.hidden_features must be > 0"):
        LIFClassifier([5, 6, 2], 3, hidden_features=0)
    with pytest.raises(ValueError, match="model.lr_schedule must be one of"):
        LIFClassifier([5, 6, 2], 3, lr_schedule="step")


def test_cosine_schedule_decays_the_rate_to_zero_over_max_epochs():
    model = LIFClassifier([5, 6, 2], 3, hidden_features=4, lr=0.01, lr_schedule="cosine")
    model.trainer = SimpleNamespace(max_epochs=4)  # what configure_optimizers reads of the trainer
    configured = model.configure_optimizers()
    optimizer, scheduler = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
    assert configured["lr_scheduler"]["interval"] == "epoch"
    rates = []
    for _ in range(4):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == 0.01 and rates == sorted(rates, reverse=True)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    constant = LIFClassifier([5, 6, 2], 3, hidden_features=4)
    assert isinstance(constant.configure_optimizers(), torch.optim.Adam)  # the tutorial's default, no trainer needed


@pytest.mark.slow
def test_compiled_model_matches_eager_and_keeps_checkpoint_keys():
    torch.manual_seed(0)
    eager = LIFClassifier([5, 6, 2], 3, hidden_features=16, v_th=0.1)
    compiled = LIFClassifier([5, 6, 2], 3, hidden_features=16, v_th=0.1, compile=True)
    compiled.load_state_dict(eager.state_dict())
    compiled.configure_model()
    compiled.configure_model()  # idempotent, as Lightning calls it per stage
    assert list(compiled.state_dict()) == list(eager.state_dict())
    frames, lengths, labels = _batch()
    losses = []
    for model in (eager, compiled):
        loss = torch.nn.functional.nll_loss(model(frames, lengths), labels)
        loss.backward()
        losses.append(loss.detach())
    torch.testing.assert_close(losses[0], losses[1])
    torch.testing.assert_close(compiled.net.lif.input_weights.grad, eager.net.lif.input_weights.grad)
