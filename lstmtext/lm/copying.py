"""Is a model copying its corpus? For samples of it: the longest span of each found verbatim in
the corpus, the share of their n-grams the corpus holds, distinct-1/2 and a repetition rate.

    report = measure_copying(samples, ["data/input.txt"])
    report.longest_chars, report.ngram_share, report.distinct_2, report.repetition

Copying is measured on UTF-8 bytes, in windows of n bytes (n characters of ASCII text),
rather than on words: it needs no word splitting, so it means the same for char, word and
BPE models and in any language, and the pass that finds the n-grams also finds the longest
copy (copy_scan.py: seconds and bounded memory on a 100 MB corpus). n = 12 by default, two or
three words: against Tiny Shakespeare, 5% of the 12-byte windows of unrelated English prose
are found, 12% of those of a char model's samples, all of those of a copy; at 8 bytes
(" of the ") a third of unrelated prose is, at 16 almost none of the model's.

Distinct-n and repetition are on words (lower-cased runs of letters and digits), as people
read repetition: the same phrase again, not the same bytes.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lstmtext.errors import ConfigError
from lstmtext.lm.copy_scan import CHUNK_BYTES, Copy, find_in_corpus

NGRAM_BYTES = 12
REPEAT_ORDER = 4  # the repetition rate counts repeated word 4-grams
_WORD = re.compile(r"\w+(?:['\u2019]\w+)*")


@dataclass(frozen=True)
class SampleMeasures:
    chars: int
    longest: Copy | None  # None: no span of n bytes or more is in the corpus
    ngrams: int  # windows of n bytes starting at a character
    ngrams_found: int  # of them, in the corpus
    distinct_1: float | None
    distinct_2: float | None
    repetition: float | None  # share of word 4-grams repeating an earlier one of the sample
    longest_at_least: bool = False  # a window repeated so often that the copy may be longer

    @property
    def longest_chars(self) -> int:
        return self.longest.chars if self.longest else 0

    @property
    def ngram_share(self) -> float | None:
        return self.ngrams_found / self.ngrams if self.ngrams else None


@dataclass(frozen=True)
class CopyingReport:
    samples: tuple[SampleMeasures, ...]
    n: int
    corpus_files: tuple[str, ...]
    corpus_bytes: int
    distinct_1: float | None  # over all samples together
    distinct_2: float | None
    repetition: float | None
    seconds: float = field(default=0.0, compare=False)

    @property
    def longest(self) -> Copy | None:
        copies = [s.longest for s in self.samples if s.longest]
        return max(copies, key=lambda c: c.chars, default=None)

    @property
    def longest_chars(self) -> int:
        return self.longest.chars if self.longest else 0

    @property
    def ngram_share(self) -> float | None:
        total = sum(s.ngrams for s in self.samples)
        return sum(s.ngrams_found for s in self.samples) / total if total else None

    def to_dict(self) -> dict[str, object]:
        samples = [
            {**asdict(s), "longest_chars": s.longest_chars, "ngram_share": s.ngram_share}
            for s in self.samples
        ]
        overall = {
            "longest_chars": self.longest_chars,
            "longest": asdict(self.longest) if self.longest else None,
            "ngram_share": self.ngram_share,
            "distinct_1": self.distinct_1,
            "distinct_2": self.distinct_2,
            "repetition": self.repetition,
        }
        return {
            "n": self.n,
            "corpus": list(self.corpus_files),
            "corpus_bytes": self.corpus_bytes,
            "seconds": round(self.seconds, 3),
            "overall": overall,
            "samples": samples,
        }


# ---- words: distinct-n and repetition


def words(text: str) -> list[str]:
    """Lower-cased words (letters, digits, inner apostrophes); punctuation is not a word."""
    return _WORD.findall(text.lower())


def _ngrams(tokens: list[str], order: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + order]) for i in range(len(tokens) - order + 1)]


def distinct(texts: Sequence[str], order: int) -> float | None:
    """Distinct-n (Li et al. 2016): unique word n-grams over all n-grams of the texts; None if none."""
    grams = [g for text in texts for g in _ngrams(words(text), order)]
    return len(set(grams)) / len(grams) if grams else None


def _repeats(text: str, order: int) -> tuple[int, int]:
    grams = _ngrams(words(text), order)
    return len(grams) - len(set(grams)), len(grams)


def repetition_rate(texts: Sequence[str], order: int = REPEAT_ORDER) -> float | None:
    """Share of the texts' word n-grams that repeat an earlier n-gram of the same text."""
    counts = [_repeats(text, order) for text in texts]
    total = sum(t for _, t in counts)
    return sum(r for r, _ in counts) / total if total else None


def measure_copying(
    samples: Sequence[str],
    corpus: Sequence[str | Path],
    *,
    n: int = NGRAM_BYTES,
    chunk_bytes: int = CHUNK_BYTES,
) -> CopyingReport:
    """Copying and repetition of `samples` against the corpus files (or folders of *.txt) `corpus`."""
    began = time.perf_counter()
    if n < 4:
        raise ConfigError(f"n-grams of at least 4 bytes, not {n}")
    if chunk_bytes < 1:
        raise ConfigError(f"chunk size must be positive, not {chunk_bytes}")
    if not any(text.strip() for text in samples):
        raise ConfigError("no samples to measure: every sample is empty")
    matches = find_in_corpus(samples, corpus, n, chunk_bytes)
    measures = tuple(
        SampleMeasures(
            chars=len(text),
            longest=matches.copies[i],
            ngrams=matches.ngrams[i],
            ngrams_found=matches.ngrams_found[i],
            distinct_1=distinct([text], 1),
            distinct_2=distinct([text], 2),
            repetition=repetition_rate([text]),
            longest_at_least=matches.lower_bound[i],
        )
        for i, text in enumerate(samples)
    )
    return CopyingReport(
        samples=measures,
        n=n,
        corpus_files=matches.corpus_files,
        corpus_bytes=matches.corpus_bytes,
        distinct_1=distinct(samples, 1),
        distinct_2=distinct(samples, 2),
        repetition=repetition_rate(samples),
        seconds=time.perf_counter() - began,
    )
