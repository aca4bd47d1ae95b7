"""Stacking predict outputs into named arrays."""

import numpy as np
import pytest
import torch

from event_lightning.callbacks.predictions import predicted_indices, stack_predictions
from event_lightning.data.loading.predict_samples import PredictSamples, sample_columns


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


def test_rows_are_the_loader_indices_without_skipped_samples():
    assert predicted_indices([[4, 5, 6], [7, 8]], skipped={5, 8}) == [4, 6, 7]


def test_sample_columns_name_split_and_file_per_row():
    columns = sample_columns([0, 3, 1], PredictSamples("test", ["a.bin", "b.bin"]))  # a file list passed twice
    np.testing.assert_array_equal(columns["sample_index"], [0, 3, 1])
    assert columns["sample_split"].tolist() == ["test"] * 3
    assert columns["sample_file"].tolist() == ["a.bin", "b.bin", "b.bin"]
    assert set(sample_columns([2], PredictSamples("val"))) == {"sample_index", "sample_split"}
