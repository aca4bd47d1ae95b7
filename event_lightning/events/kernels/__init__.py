"""Compiled (numba) passes behind :mod:`event_lightning.events.represent` and
:mod:`event_lightning.events.augment`, one module per kernel family:

- ``frames``: check, index and count the events of every frame (``to_frame``);
- ``voxel``: the bilinear voxel grid in tonic's addition order (``voxel_grid``);
- ``filters``: ``denoise``, ``refractory_period`` and the copy of the kept records;
- ``geometry``: ``downsample``'s coordinate and time scaling;
- ``search``: bisection of the strided event times (frame bounds);
- ``compiler``: the ``njit`` decorator (cache, fallbacks) and the numba types of event records;
- ``loading``: which implementation runs (compiled, or the numpy fallback with one warning).

Nothing is imported here: numba loads on the first call that needs a kernel
(:func:`~event_lightning.events.kernels.loading.compiled_kernels`), never on ``import event_lightning``.
"""
