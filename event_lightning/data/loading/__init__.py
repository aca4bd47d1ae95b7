"""What the datasets share, one job per module: framing and batching, caches, samplers, the
bad-sample policy, checks of data settings, and the file formats of the image datasets
(MNIST's IDX, the dSprites npz) that a dataset and its stand-in both use."""
