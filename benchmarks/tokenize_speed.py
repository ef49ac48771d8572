"""Tokenising speed: ``encode_array`` (the corpus path) against HF ``tokenizers``' own ``encode``.

    python -m benchmarks --only tokenize_speed [--quick]
    python -m benchmarks.tokenize_speed [path/to/input.txt]     # char encode_array alone, 50 MB

The text is Tiny Shakespeare repeated when it is on disk, else synthetic English-like text.
Char level: ``encode_array`` maps code points through a numpy table instead of building an
HF Encoding per character. BPE: ``encode_array`` cuts the text into blocks at exact places and
encodes them in parallel. Both against one ``Tokenizer.encode`` call on the same kind of text,
timed interleaved, as MB of UTF-8 per second.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import Interleaved, result, synthetic_text
from lstmtext.config import TokenizerConfig
from lstmtext.data.tokenizer import TextTokenizer


def base_text() -> str:
    """Tiny Shakespeare when it is on disk (never downloaded), else ~1.1 MB of synthetic text."""
    try:
        from lstmtext.corpora import resolve

        return resolve("tinyshakespeare", allow_download=False).path("text").read_text(encoding="utf-8")
    except Exception:  # noqa: BLE001 - any failure means: use the synthetic text
        return synthetic_text(1_100_000)


def repeated(text: str, megabytes: float) -> str:
    return text * max(1, round(megabytes * 1e6 / len(text.encode("utf-8"))))


def seconds_per_megabyte(encode: Callable[[str], Any], text: str) -> Callable[[int], float]:
    megabytes = len(text.encode("utf-8")) / 1e6

    def run(repeats: int) -> float:
        start = time.perf_counter()
        for _ in range(repeats):
            encode(text)
        return (time.perf_counter() - start) / repeats / megabytes

    return run


def run(quick: bool) -> list[dict[str, Any]]:
    text = base_text()
    rounds = 3 if quick else 5
    # HF's encode builds an Encoding (ids, offsets, token strings) per token: a few MB is enough
    # to time it, and more would take seconds and hundreds of MB each round.
    sizes = {"char": (16, 0.25), "bpe": (0.5, 0.25)} if quick else {"char": (64, 1), "bpe": (2, 1)}
    rows = []
    for level, (fast_mb, hf_mb) in sizes.items():
        tokenizer = TextTokenizer.train([text], TokenizerConfig(level=level, vocab_size=2000))
        hf_encode = tokenizer._hf.encode  # the HF Tokenizer underneath: the baseline
        timing = Interleaved(
            {
                "encode_array": seconds_per_megabyte(tokenizer.encode_array, repeated(text, fast_mb)),
                "hf": seconds_per_megabyte(
                    lambda t, encode=hf_encode: encode(t, add_special_tokens=False).ids, repeated(text, hf_mb)
                ),
            }
        )
        timing.run(rounds, 1, warmup=0)
        rows.append(
            result(
                f"tokenize.{level}",
                timing.per_second("encode_array", 1.0),
                "MB/s",
                "HF tokenizers encode",
                timing.per_second("hf", 1.0),
                timing.ratio("encode_array", "hf"),
            )
        )
    return rows


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    text = path.read_text(encoding="utf-8") if path else base_text()
    tokenizer = TextTokenizer.train([text], TokenizerConfig(level="char"))
    big = repeated(text, 50)
    megabytes = len(big.encode("utf-8")) / 1e6
    for variant, sample in (("ascii", big), ("with one unseen char", big + "\u2603")):
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            tokenizer.encode_array(sample)
            best = min(best, time.perf_counter() - start)
        print(
            f"char encode_array, {variant}: {megabytes:.0f} MB in {best:.3f} s = {megabytes / best:.0f} MB/s"
        )


if __name__ == "__main__":
    main()
