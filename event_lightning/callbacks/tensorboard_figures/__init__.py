"""Generic TensorBoard figures usable from any config: the validation input, spike rasters, confusion matrix.

Three callbacks, the first two also usable as plain functions from Python:

* :class:`InputFigureLogger` / :func:`input_figure`: the first validation batch's input drawn as
  ON/OFF event panels (``event_lightning.viz.plot_frame_rows``), one row per sample, named by its
  label and, for classifiers, the model's prediction;
* :class:`SpikeRasterLogger` / :func:`spike_raster_figures`: a forward hook on a submodule named
  by its dotted path (``net.lif``) captures its spikes on the first validation batch and draws
  rasters (``event_lightning.viz.plot_spike_raster``);
* :class:`ConfusionMatrixLogger`: a classifier's confusion matrix over the whole validation epoch
  (``event_lightning.viz.plot_confusion_matrix``), counted on the device step by step.

All three log every ``every_n_epochs`` validation epochs (the sanity check excluded) at the trainer's
global step, on global rank 0 only, and do nothing (after one warning) when the trainer has no
TensorBoard logger. In a config::

    trainer:
      callbacks:
        - class_path: event_lightning.callbacks.tensorboard_figures.InputFigureLogger
          init_args: {every_n_epochs: 1}
        - class_path: event_lightning.callbacks.tensorboard_figures.SpikeRasterLogger
          init_args: {module: net.lif}
        - class_path: event_lightning.callbacks.tensorboard_figures.ConfusionMatrixLogger

``periodic``: the shared logging rules; ``classes``: labels and predictions of a batch; ``inputs``: the
input panels; ``rasters``: the spike rasters; ``confusion``: the confusion matrix.
"""

from event_lightning.callbacks.tensorboard_figures.confusion import ConfusionMatrixLogger
from event_lightning.callbacks.tensorboard_figures.inputs import (
    DICT_KEY_LAYOUTS,
    LAYOUTS,
    InputFigureLogger,
    input_figure,
)
from event_lightning.callbacks.tensorboard_figures.rasters import (
    RasterSelection,
    SpikeRasterLogger,
    select_output,
    spike_raster_figures,
)

__all__ = [
    "ConfusionMatrixLogger",
    "DICT_KEY_LAYOUTS",
    "LAYOUTS",
    "InputFigureLogger",
    "RasterSelection",
    "SpikeRasterLogger",
    "input_figure",
    "select_output",
    "spike_raster_figures",
]
