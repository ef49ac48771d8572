"""Small deterministic corpora for tests and examples, written by the project itself.

The same (size, seed) always gives the same bytes, so tests never need the real data sets.
"""

from __future__ import annotations

import random
from pathlib import Path

_WORDS = (
    "the",
    "a",
    "of",
    "and",
    "to",
    "in",
    "is",
    "was",
    "it",
    "that",
    "he",
    "she",
    "they",
    "we",
    "you",
    "with",
    "for",
    "on",
    "as",
    "at",
    "by",
    "this",
    "from",
    "king",
    "queen",
    "night",
    "day",
    "light",
    "sea",
    "ship",
    "house",
    "garden",
    "river",
    "stone",
    "wind",
    "fire",
    "winter",
    "summer",
    "speak",
    "walk",
    "sing",
    "hold",
    "bring",
    "find",
    "keep",
    "follow",
    "remember",
    "wander",
)
_POSITIVE = (
    "wonderful",
    "delightful",
    "brilliant",
    "superb",
    "moving",
    "charming",
    "excellent",
    "joyful",
)
_NEGATIVE = (
    "dreadful",
    "boring",
    "awful",
    "tedious",
    "clumsy",
    "dull",
    "terrible",
    "painful",
)
_FILLER = (
    "the",
    "film",
    "story",
    "acting",
    "plot",
    "director",
    "cast",
    "was",
    "is",
    "a",
    "an",
    "this",
    "it",
    "and",
)


def sample_text(n_chars: int, seed: int = 0) -> str:
    """About-English lines of ``n_chars`` characters in all, each line ending in a newline."""
    rng = random.Random(seed)
    lines: list[str] = []
    size = 0
    while size < n_chars:
        words = rng.choices(_WORDS, k=rng.randint(3, 12))
        line = " ".join(words).capitalize() + rng.choice(".,;!?") + "\n"
        lines.append(line)
        size += len(line)
    return "".join(lines)[:n_chars]


def write_sample_text(path: Path, n_chars: int, seed: int = 0) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(sample_text(n_chars, seed), encoding="utf-8", newline="")
    return path


def sample_labelled(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` (label, text) pairs, alternating positive and negative, each with clear sentiment words."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "positive" if i % 2 == 0 else "negative"
        cues = _POSITIVE if label == "positive" else _NEGATIVE
        words = rng.choices(_FILLER, k=rng.randint(3, 8)) + rng.choices(cues, k=rng.randint(1, 3))
        rng.shuffle(words)
        rows.append((label, " ".join(words)))
    return rows


def write_sample_labelled(path: Path, n: int, seed: int = 0) -> Path:
    """A sentiment TSV in the catalogue's format: ``label<TAB>text`` lines, no header."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = "".join(f"{label}\t{text}\n" for label, text in sample_labelled(n, seed))
    path.write_text(lines, encoding="utf-8", newline="")
    return path
