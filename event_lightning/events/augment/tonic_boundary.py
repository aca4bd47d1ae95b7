"""Where this package's transforms meet tonic's: event dtypes and random generators at the boundary.

tonic's transforms take one structured array and return one, in whatever dtype the dataset uses
(field orders and integer widths vary; DVSGesture's ``p`` is bool), and draw their randomness
from numpy's global generator (``np.random``). This package's transforms compute on
:data:`EVENT_DTYPE` with an explicit :class:`numpy.random.Generator`. The helpers here convert
both ways:

* :func:`events_in` / :func:`events_like`: any x, y, t, p structured array to EVENT_DTYPE and
  back into the caller's dtype, by field name;
* :func:`generator_from_global`: the generator of a transform called the tonic way without one,
  drawn from numpy's global state, so seeding that state (``np.random.seed``, Lightning's
  ``seed_everything``) seeds this package's transforms as it seeds tonic's;
* :func:`global_numpy_seeded`: runs a foreign (tonic) transform with numpy's global state seeded
  from a pipeline's generator, and restores the state after, so a pipeline with tonic transforms
  is as reproducible as one without.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from event_lightning.events.augment.common import _as_events
from event_lightning.events.core import EVENT_DTYPE, EVENT_FIELDS, EventFormatError


def events_in(events: np.ndarray, origin: str) -> np.ndarray:
    """``events`` (fields x, y, t, p by name, any order and widths) as :data:`EVENT_DTYPE`.

    Refuses arrays with fields beyond x, y, t, p: a transform returns new records, which could
    not carry them.
    """
    names = getattr(getattr(events, "dtype", None), "names", None)
    extra = [name for name in names or () if name not in EVENT_FIELDS]
    if extra:
        raise EventFormatError(
            f"{origin}: events with fields {list(names)}; this transform keeps only x, y, t, p, so it "
            f"would drop {extra}"
        )
    return _as_events(events)


def events_like(events: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """:data:`EVENT_DTYPE` ``events`` in the caller's structured ``dtype``, field by field by name."""
    if dtype == EVENT_DTYPE:
        return events
    out = np.empty(len(events), dtype=dtype)
    for name in EVENT_FIELDS:
        out[name] = events[name]
    return out


def generator_from_global() -> np.random.Generator:
    """A generator seeded from numpy's global state, as tonic's transforms draw from it."""
    return np.random.default_rng(np.random.randint(np.iinfo(np.int64).max, dtype=np.int64))


@contextmanager
def global_numpy_seeded(rng: np.random.Generator) -> Iterator[None]:
    """numpy's global state seeded from ``rng`` inside the block, restored after it."""
    saved = np.random.get_state()
    np.random.seed(int(rng.integers(2**32, dtype=np.int64)))
    try:
        yield
    finally:
        np.random.set_state(saved)
