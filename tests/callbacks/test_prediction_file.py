"""Stacking predict outputs into named arrays."""

import numpy as np
import pytest
import torch

from event_lightning.callbacks.predictions import stack_predictions


def test_dict_outputs_are_concatenated_per_key_in_order():
    batches = [
        {"probabilities": torch.tensor([[0.2, 0.8]]), "label": torch.tensor([1])},
        {"probabilities": torch.tensor([[0.6, 0.4], [0.5, 0.5]]), "label": torch.tensor([0, 1])},
    ]
    stacked = stack_predictions(batches)
    np.testing.assert_array_equal(stacked["label"], [1, 0, 1])
    assert stacked["probabilities"].shape == (3, 2) and stacked["probabilities"][1, 0] == pytest.approx(0.6)


def test_tensor_outputs_are_saved_as_prediction():
    joints = [torch.zeros(2, 5, 13, 2), torch.ones(1, 5, 13, 2)]
    stacked = stack_predictions(joints)
    assert list(stacked) == ["prediction"] and stacked["prediction"].shape == (3, 5, 13, 2)
    assert stacked["prediction"][2].min() == 1


def test_batches_with_different_keys_are_an_error():
    with pytest.raises(ValueError, match=r"predict batch 1 returned keys \['b'\], earlier batches \['a'\]"):
        stack_predictions([{"a": torch.zeros(1)}, {"b": torch.zeros(1)}])
