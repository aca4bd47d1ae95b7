"""Networks of the hybrid ANN-SNN pose method (CNN, SNN, RNN, hybrids) and their heatmaps."""

from event_lightning.nn.pose.convlstm import ConvLSTMCell, LSTMState, RecurrentPoseUNet
from event_lightning.nn.pose.heatmaps import (
    argmax_decode,
    gaussian_kernel_size,
    render_heatmaps,
    valid_joints,
)
from event_lightning.nn.pose.hybrid import (
    SNN_STATE_SOURCES,
    HybridCNNRNN,
    HybridCNNSNN,
    HybridOutput,
    RNNStateHeads,
    SNNStateHeads,
    StateInitHead,
)
from event_lightning.nn.pose.init import xavier_init
from event_lightning.nn.pose.lif import (
    DecayInputLIF,
    DecayInputLIFCell,
    LIFParams,
    atan_spike,
    leaky_integrate,
    lif_multistep,
    lif_step,
)
from event_lightning.nn.pose.snn_unet import SNN_LIF_LAYERS, SNNOutput, SpikingPoseUNet
from event_lightning.nn.pose.unet_cnn import CNN_FEATURES, PoseUNetCNN

__all__ = [
    "CNN_FEATURES",
    "SNN_LIF_LAYERS",
    "SNN_STATE_SOURCES",
    "ConvLSTMCell",
    "DecayInputLIF",
    "DecayInputLIFCell",
    "HybridCNNRNN",
    "HybridCNNSNN",
    "HybridOutput",
    "LIFParams",
    "LSTMState",
    "PoseUNetCNN",
    "RNNStateHeads",
    "RecurrentPoseUNet",
    "SNNOutput",
    "SNNStateHeads",
    "SpikingPoseUNet",
    "StateInitHead",
    "argmax_decode",
    "atan_spike",
    "gaussian_kernel_size",
    "leaky_integrate",
    "lif_multistep",
    "lif_step",
    "render_heatmaps",
    "valid_joints",
    "xavier_init",
]
