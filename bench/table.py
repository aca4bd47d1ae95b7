"""The results as a table: number formatting, the terminal table and the markdown table."""

from __future__ import annotations

from bench.results import Results


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


def format_bytes(n_bytes: float | None) -> str:
    if n_bytes is None:
        return "-"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.2f} {unit}"
    return f"{n_bytes:.0f} B"


def format_value(value: float | None, unit: str) -> str:
    """A row's time (``unit="s"``) or size (``unit="B"``)."""
    return format_bytes(value) if unit == "B" else format_seconds(value)


def format_ratio(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.1f}x"


HEADER = ("group", "operation", "size", "this project", "peer", "peer time", "ratio", "outputs agree", "note")


def table_cells(results: Results) -> list[tuple[str, ...]]:
    return [
        (
            r.group,
            r.operation,
            r.size,
            format_value(r.ours_s, r.unit),
            r.peer,
            format_value(r.peer_s, r.unit),
            format_ratio(r.ratio),
            r.agree,
            r.note,
        )
        for r in results.rows
    ]


def format_text_table(results: Results) -> str:
    """Fixed-width text table for the terminal, skipped rows listed after it."""
    cells = [HEADER, *table_cells(results)]
    widths = [max(len(row[k]) for row in cells) for k in range(len(HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines += [f"skipped: {s.group} / {s.operation}: {s.reason}" for s in results.skipped]
    return "\n".join(lines)


def format_markdown_table(results: Results) -> str:
    cells = table_cells(results)
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in cells]
    return "\n".join(lines)
