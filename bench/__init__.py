"""Benchmarks of event_lightning against tonic, norse and spikingjelly (``python -m bench``)."""
