"""LightningModules of the hybrid ANN-SNN pose method: CNN, SNN, RNN and the two hybrids.

All share the loss and the metrics (hybrid_pose spec §3):

* target: peak-normalised Gaussian heatmaps (sigma 2, 11x11, reflect padding) rendered on the
  device from the batch's joint coordinates (truncated to integer pixels, as the reference does);
* loss: MSE over all pixels, averaged over the labelled steps of a window;
* 2D MPJPE of the per-joint argmax against the truncated label, NaN joints ignored, in sensor
  pixels (grid pixels times the data's ``pixel_scale``): per step, mean over the window
  (``*/mpjpe``) and last step (``*/mpjpe_last``);
* "CNN held at 10 Hz": the CNN's prediction at the window start scored against every label of
  the window (``*/mpjpe_held``, CNN and hybrids);
* 3D MPJPE in mm (``*/mpjpe_3d``) when the batch stacks several camera views of the same window
  (``stack_test_views``): argmax pixels of every view are triangulated with the projection
  matrices.

Batches come from :class:`~event_lightning.data.datasets.dhp19.DHP19DataModule`.

``base``: the loss, decoding, scoring and logging above; ``cnn``: :class:`PoseCNN`; ``sequence``:
the window models :class:`PoseSNN` and :class:`PoseRNN`; ``hybrids``: :class:`PoseHybridCNNSNN`,
:class:`PoseHybridCNNRNN` and the pretrained loading they share. Configs and checkpoints name the
classes by ``event_lightning.models.pose.<Class>``.
"""

from event_lightning.models.pose.cnn import PoseCNN
from event_lightning.models.pose.hybrids import PoseHybridCNNRNN, PoseHybridCNNSNN, load_network_weights
from event_lightning.models.pose.sequence import PoseRNN, PoseSNN

__all__ = [
    "PoseCNN",
    "PoseHybridCNNRNN",
    "PoseHybridCNNSNN",
    "PoseRNN",
    "PoseSNN",
    "load_network_weights",
]
