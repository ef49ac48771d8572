"""Char-level ``encode_array`` throughput on Tiny Shakespeare repeated to about 50 MB.

    python benchmarks/tokenize_speed.py [path/to/input.txt]

Prints MB/s of UTF-8 text. Not a test: timings depend on the machine.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from lstmtext.config import TokenizerConfig
from lstmtext.corpora import resolve
from lstmtext.tokenizer import TextTokenizer


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else resolve("tinyshakespeare").path("text")
    text = path.read_text(encoding="utf-8")
    tokenizer = TextTokenizer.train([text], TokenizerConfig(level="char"))
    big = text * max(1, (50 << 20) // len(text.encode("utf-8")))
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
