"""What a benchmark group produces: measured rows and skipped rows, collected in :class:`Results`."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Row:
    """One line of the table. Times are seconds per call (median); ``peer_s`` None = no peer.

    ``unit`` is ``"s"`` (times) or ``"B"`` (bytes: memory rows put bytes in ``ours_s`` / ``peer_s``,
    and the ratio peer bytes / our bytes is again > 1 when this project is better)."""

    group: str
    operation: str
    size: str
    ours_s: float
    peer: str = "-"
    peer_s: float | None = None
    agree: str = "-"
    note: str = ""
    unit: str = "s"

    @property
    def ratio(self) -> float | None:
        """Peer time / our time (> 1: this project is faster)."""
        return None if self.peer_s is None else self.peer_s / self.ours_s


@dataclass
class Skipped:
    """A row that could not run, with the reason printed in the table's footnotes."""

    group: str
    operation: str
    reason: str


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
