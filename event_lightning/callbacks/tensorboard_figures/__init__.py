"""Generic TensorBoard figures usable from any config: the validation input, spike rasters, confusion matrix.

Three callbacks, the first two also usable as plain functions from Python:

* :class:`InputFigureLogger` / :func:`input_canvas`: the first validation batch's input drawn as
  ON/OFF event panels, one row per sample, named by its label and, for classifiers, the model's
  prediction;
* :class:`SpikeRasterLogger` / :func:`spike_raster_canvases`: a forward hook on a submodule named
  by its dotted path (``net.lif``) captures its spikes on the first validation batch and draws
  rasters;
* :class:`ConfusionMatrixLogger`: a classifier's confusion matrix over the whole validation epoch,
  counted on the device step by step.

They draw with :mod:`event_lightning.viz.canvas_figures` (numpy pixels, Pillow text: a few ms per
figure), not matplotlib (50-150 ms), so that their share of a short run's time stays small.

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
    input_canvas,
)
from event_lightning.callbacks.tensorboard_figures.rasters import (
    RasterSelection,
    SpikeRasterLogger,
    select_output,
    spike_raster_canvases,
)

__all__ = [
    "ConfusionMatrixLogger",
    "DICT_KEY_LAYOUTS",
    "LAYOUTS",
    "InputFigureLogger",
    "RasterSelection",
    "SpikeRasterLogger",
    "input_canvas",
    "select_output",
    "spike_raster_canvases",
]
