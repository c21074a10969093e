"""Figures the tests report at the end of the run (deliveries, duplicates, kills, inputs tried)."""

from __future__ import annotations

FIGURES: list[str] = []


def record(line: str) -> None:
    """Keep ``line`` for the "flask_stars figures" section of pytest's summary."""
    FIGURES.append(line.strip())
