"""torchmetrics Metric subclasses and metric helpers (MPJPE, triangulation, equivariance error)."""
