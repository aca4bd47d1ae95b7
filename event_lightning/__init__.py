"""event_lightning: PyTorch Lightning for event cameras and spiking neural networks."""

from event_lightning import _moved
from event_lightning._version import package_version

__version__: str = package_version()

# Old module paths (event_lightning._moved.MOVED_MODULES) keep importing, with a warning, until 0.3.
_moved.install()
