"""Learning-rate shapes shared by the language-model and classifier loops."""

from __future__ import annotations

SLANTED_CUT = 0.1  # ULMFiT: the rate climbs for the first tenth of the run
SLANTED_RATIO = 32  # and ends at 1/32 of its peak


def slanted_triangular(progress: float, cut: float = SLANTED_CUT, ratio: float = SLANTED_RATIO) -> float:
    """ULMFiT's slanted triangular rate (Howard & Ruder 2018, eq. 3) as a fraction of the peak,
    at `progress` in [0, 1] of the run: a short linear climb from 1/ratio to 1 over the first
    `cut` of the run, then a long linear fall back to 1/ratio."""
    progress = min(max(progress, 0.0), 1.0)
    p = progress / cut if progress < cut else 1 - (progress - cut) / (1 - cut)
    return (1 + p * (ratio - 1)) / ratio
