"""Corpora larger than memory: which corpus takes the memory-mapped path, where its id cache
lives, and the sample its tokenizer learns from.

A corpus that is one UTF-8 file of at least BIG_CORPUS_BYTES (or any single UTF-8 file when a
cache dir is given) is never read whole: the tokenizer trains on its first
TOKENIZER_SAMPLE_BYTES, and `corpus.cached_ids` tokenises it once, in chunks, into a .npy
file that training memory-maps (TokenStream copies out one (B, T) window per batch).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from lstmtext.data.corpus import cached_ids
from lstmtext.data.sources import decode_corpus, is_compressed, open_corpus
from lstmtext.data.tokenizer import TextTokenizer
from lstmtext.distributed import Distributed
from lstmtext.errors import ConfigError, CorpusError
from lstmtext.events import TrainEvent

# In memory, a corpus costs its bytes, its str and its ids (2-4 bytes per token): from
# about this size the memory map is the better deal, and preparing it once pays for itself.
BIG_CORPUS_BYTES = 256 << 20
COMPRESSION_RATIO = 4  # about what gzip, bzip2 and xz make of English text
TOKENIZER_SAMPLE_BYTES = 64 << 20
CACHE_DIR_NAME = ".lstmtext-cache"
# The validation tail of a big corpus is big too (10 % of 2 GB is 200M tokens): evaluating
# all of it at every evaluation would stall training, so it is capped unless asked for.
BIG_EVAL_BATCHES = 100


def big_corpus_file(
    sources: Sequence[str],
    *,
    encoding: str = "utf-8",
    errors: str = "strict",
    cache_dir: Path | None = None,
    threshold: int = BIG_CORPUS_BYTES,
) -> Path | None:
    """The file to train on through the memory-mapped id cache, or None to read the corpus whole.

    Only a single UTF-8 file qualifies (the cache decodes strictly); a cache dir asks for the
    memory map whatever the size, and is refused for corpora that cannot take it.
    """
    path = Path(sources[0]) if len(sources) == 1 and sources[0] != "-" else None
    utf8 = encoding.lower().replace("_", "-") in ("utf-8", "utf8") and errors == "strict"
    if path is None or not path.is_file() or not utf8:
        if cache_dir is not None:
            raise ConfigError(
                "--cache-dir needs the corpus to be a single UTF-8 file (--encoding utf-8 --errors strict)"
            )
        return None
    # A compressed file's text is some times its size on disk: judged by that, not the gzip size.
    size = path.stat().st_size * (COMPRESSION_RATIO if is_compressed(path) else 1)
    if cache_dir is None and size < threshold:
        return None
    return path


def default_cache_dir(corpus: Path, out_dir: Path) -> Path:
    """Beside the corpus, so that every run on it shares one cache; in the run dir if that is read-only."""
    beside = corpus.parent / CACHE_DIR_NAME
    if os.access(beside if beside.is_dir() else corpus.parent, os.W_OK):
        return beside
    return Path(out_dir) / "cache"


def read_sample(path: Path, max_bytes: int = TOKENIZER_SAMPLE_BYTES) -> str:
    """The first max_bytes of a UTF-8 file, ending after a newline (or a whole character)."""
    file, raw = open_corpus(Path(path))
    with raw, file:
        data = file.read(max_bytes + 1)
    if len(data) > max_bytes:
        data = data[:max_bytes]
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            # No newline: drop the last character, which may have been cut in the middle.
            cut = max(i for i in range(max(0, len(data) - 4), len(data)) if data[i] & 0xC0 != 0x80)
        data = data[:cut]
    return decode_corpus(data, str(path))


def memory_mapped_ids(
    path: Path,
    tokenizer: TextTokenizer,
    cache_dir: Path,
    *,
    distributed: Distributed | None = None,
    on_event: Callable[[TrainEvent], None] | None = None,
) -> np.ndarray:
    """The corpus's ids (N,), memory-mapped; made on rank 0 first (with "prepare" events) if need be."""
    distributed = distributed or Distributed()
    started = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if on_event is not None:
            message = f"tokenising {path.name} into {cache_dir} (once; later runs reuse it)"
            elapsed = time.perf_counter() - started
            on_event(TrainEvent("prepare", done, total, elapsed=elapsed, message=message))

    if distributed.is_main:
        ids = cached_ids(path, tokenizer, cache_dir, on_progress=progress)
    distributed.barrier()  # the other ranks open the cache rank 0 has written
    if not distributed.is_main:
        ids = cached_ids(path, tokenizer, cache_dir)
    if len(ids) < 2:
        raise CorpusError(f"{path}: fewer than 2 tokens, nothing to learn")
    return ids
