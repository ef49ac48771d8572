"""Where the samples occur in a corpus: which of their n-byte windows it holds, and each sample's
longest span found verbatim in it, with its place; one streaming pass, bounded memory.

The samples are small (N x a few thousand bytes), the corpus big. The sample windows'
64-bit polynomial hashes go in a sorted array; the corpus is read once, in chunks that overlap
by the longest sample, and the hashes of all its windows are computed per chunk with numpy
(prefix sums of the bytes times powers of the inverse base, so a window of any length costs
three array operations). A corpus window whose hash is in the samples' set pairs its corpus
position j with every sample position s holding that window (a window some sample repeats
more than MAX_POSITIONS times is not paired, and that sample's longest copy is a lower
bound); a copy of L bytes is a run of L - n + 1 pairs (j, s), (j + 1, s + 1), ... on one
diagonal s - j, so one sort of the pairs by diagonal gives every copy with its place in the
corpus, and n-grams chained from different places never pass for one copy. As chunks overlap
by the longest sample, every copy lies whole in one chunk. A sample's best copy is compared
byte for byte with the chunk before it counts, so a hash collision cannot report a copy.

Memory is bounded by the chunk, not the corpus: a few arrays of 8 bytes per byte of a chunk
(CHUNK_BYTES = 1 MiB: about 65 MB peak for the whole process, numpy included, on a 100 MB
corpus), the samples' windows and at most PAIRS_PER_BATCH pairs at a time.
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import io
import lzma
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstmtext.errors import CorpusError

CHUNK_BYTES = 1 << 20
# A window a sample repeats more often is not paired with the corpus (see _SampleWindows).
MAX_POSITIONS = 32
PAIRS_PER_BATCH = 1 << 20  # pairs sorted at once: bounds memory when windows are frequent
_BASE = 0x9E3779B97F4A7C15  # odd, so invertible modulo 2**64
_BASE_INVERSE = pow(_BASE, -1, 1 << 64)
_OPENERS: dict[str, Callable[..., io.BufferedIOBase]] = {
    ".gz": gzip.GzipFile,
    ".bz2": bz2.BZ2File,
    ".xz": lzma.LZMAFile,
}


@dataclass(frozen=True)
class Copy:
    """A span of a sample found verbatim in the corpus."""

    text: str
    chars: int
    file: str  # where in the corpus: the file and the byte offset of the span's start
    byte: int


# ---- hashes of byte windows


class _Powers:
    """BASE**i and BASE_INVERSE**(i + 1) modulo 2**64, grown on demand."""

    def __init__(self) -> None:
        self.up: np.ndarray = np.ones(1, dtype=np.uint64)
        self.down: np.ndarray = np.full(1, _BASE_INVERSE, dtype=np.uint64)

    def ensure(self, size: int) -> None:
        if len(self.up) >= size:
            return
        size = max(size, 2 * len(self.up))
        # uint64 products wrap around: arithmetic modulo 2**64, as the hash wants.
        self.up = np.ones(size, dtype=np.uint64)
        np.cumprod(np.full(size - 1, _BASE, dtype=np.uint64), out=self.up[1:])
        self.down = np.cumprod(np.full(size, _BASE_INVERSE, dtype=np.uint64))


def window_hashes(data: np.ndarray, n: int, powers: _Powers) -> np.ndarray:
    """The polynomial hash sum(b[k + i] * BASE**(n - 1 - i)) of every window of n bytes, (len - n + 1,).

    With prefix[k] = sum(b[i] * BASE**-(i + 1) for i < k), a window is
    (prefix[k + n] - prefix[k]) * BASE**(k + n): three array operations for any n.
    """
    size = len(data)
    if size < n:
        return np.empty(0, dtype=np.uint64)
    powers.ensure(size + 1)
    prefix = np.empty(size + 1, dtype=np.uint64)
    prefix[0] = 0
    np.multiply(data, powers.down[:size], out=prefix[1:])
    np.cumsum(prefix[1:], out=prefix[1:])
    hashes = prefix[n:] - prefix[: size - n + 1]
    hashes *= powers.up[n : size + 1]
    return hashes


# ---- the samples' side


class _SampleWindows:
    """The samples' bytes end to end, their windows' hashes and which sample positions hold each."""

    def __init__(self, texts: Sequence[str], n: int, powers: _Powers) -> None:
        encoded = [text.encode("utf-8") for text in texts]
        lengths = np.array([len(e) for e in encoded], dtype=np.int64)
        self.ends = np.cumsum(lengths)
        self.starts = self.ends - lengths
        self.data = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        self.owner = np.repeat(np.arange(len(texts)), lengths)  # sample of each byte
        self.longest_sample = int(lengths.max(initial=0))
        hashes = window_hashes(self.data, n, powers)
        positions = np.arange(len(hashes))
        positions = positions[positions + n <= self.ends[self.owner[positions]]]  # not across samples
        self.unique, ids = np.unique(hashes[positions], return_inverse=True)
        self.ids = ids.reshape(-1)
        self.positions = positions
        # The share counts windows that start a character; copies may start anywhere.
        self.counted = (self.data[positions] & 0xC0) != 0x80
        # Positions grouped by window, then sample, in text order. A window some sample holds more
        # than MAX_POSITIONS times makes that sample's longest copy a lower bound, and
        owner = self.owner[positions]
        order = np.lexsort((positions, owner, self.ids))
        ids, owner = self.ids[order], owner[order]
        group_starts = np.concatenate([[True], (ids[1:] != ids[:-1]) | (owner[1:] != owner[:-1])])
        first = np.flatnonzero(group_starts)
        keep = np.arange(len(order)) - first[np.cumsum(group_starts) - 1] < MAX_POSITIONS
        self.by_id = positions[order][keep]
        self.id_start = np.searchsorted(ids[keep], np.arange(len(self.unique)))
        self.id_count = np.bincount(ids[keep], minlength=len(self.unique))
        self.lower_bound = np.zeros(len(texts), dtype=bool)
        self.lower_bound[owner[~keep]] = True
        # is not paired at all: against a corpus of the same (spaces, say) it would pair most of
        # the corpus with every one of its places.
        self.id_count[ids[~keep]] = 0
        # A bitmap of the hashes' top bits rules most corpus windows out before the binary search.
        self.shift = np.uint64(64 - int(np.clip(np.log2(max(len(self.unique), 1)) + 6, 16, 26)))
        self.table = np.zeros(1 << (64 - int(self.shift)), dtype=bool)
        self.table[self.unique >> self.shift] = True


# ---- the corpus's side


def corpus_files(sources: Sequence[str | Path]) -> list[Path]:
    """The files of the corpus: each source a file, or a folder (its *.txt, recursively, sorted)."""
    if not sources:
        raise CorpusError("no corpus given")
    files: list[Path] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*.txt") if p.is_file())
            if not found:
                raise CorpusError(f"{path}: directory has no .txt files")
            files += found
        elif path.exists():
            files.append(path)
        else:
            raise CorpusError(f"{path}: no such file or directory")
    return files


def _open(path: Path) -> io.BufferedIOBase:
    opener = _OPENERS.get(path.suffix.lower())
    try:
        return opener(path, "rb") if opener else open(path, "rb")
    except OSError as error:
        raise CorpusError(f"{path}: cannot read ({error.strerror or error})") from None


def _chunks(path: Path, chunk_bytes: int, overlap: int) -> Iterator[tuple[int, np.ndarray]]:
    """(file offset, bytes) of each chunk; a chunk starts with the last `overlap` bytes of the one before."""
    buffer = np.empty(overlap + chunk_bytes, dtype=np.uint8)
    kept, offset = 0, 0  # bytes carried over; file offset of buffer[0]
    with _open(path) as stream:
        try:
            while True:
                read = stream.readinto(buffer.data[kept:])
                if not read:
                    break
                size = kept + read
                chunk = buffer[:size]
                if not chunk[kept:].all():
                    nul = kept + int(np.argmin(chunk[kept:]))
                    raise CorpusError(f"{path}: binary data (a NUL byte at byte {offset + nul}), not text")
                if offset == 0:
                    _check_head(path, bytes(chunk[:65536]))
                yield offset, chunk
                kept = min(overlap, size)
                buffer[:kept] = buffer[size - kept : size]
                offset += size - kept
        except (OSError, EOFError, lzma.LZMAError) as error:
            raise CorpusError(f"{path}: cannot read ({error})") from None
    if offset == 0 and kept == 0:
        raise CorpusError(f"{path}: empty file")


def _check_head(path: Path, head: bytes) -> None:
    try:  # not final: a character cut at the head's end is no error
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError as error:
        raise CorpusError(f"{path}: not UTF-8 text (byte {error.start})") from None


# ---- matching


@dataclass
class _Best:
    """Per sample, the longest copy verified so far: its length in bytes, sample and corpus places."""

    length: np.ndarray
    sample_at: np.ndarray
    places: list[tuple[str, int] | None]


def _scan_chunk(
    chunk: np.ndarray,
    file: str,
    offset: int,
    windows: _SampleWindows,
    n: int,
    powers: _Powers,
    found: np.ndarray,
    best: _Best,
) -> None:
    hashes = window_hashes(chunk, n, powers)  # (chunk - n + 1,): window k starts at chunk byte k
    candidates = np.flatnonzero(np.take(windows.table, hashes >> windows.shift))
    if not len(candidates):
        return
    wanted = hashes[candidates]
    index = np.minimum(np.searchsorted(windows.unique, wanted), len(windows.unique) - 1)
    hit = windows.unique[index] == wanted
    positions, ids = candidates[hit], index[hit]
    found[ids] = True
    # Pairs are sorted in batches; batches overlap by the longest sample, so no copy is cut.
    counts = windows.id_count[ids]
    cumulative = np.cumsum(counts)
    budget = max(PAIRS_PER_BATCH, 4 * int(windows.id_count.max()) * windows.longest_sample)
    first = 0
    while first < len(positions):
        done = int(cumulative[first - 1]) if first else 0
        last = max(first + 1, int(np.searchsorted(cumulative, done + budget, side="right")))
        _copies(chunk, file, offset, positions[first:last], ids[first:last], windows, n, best)
        if last >= len(positions):
            break
        first = max(first + 1, int(np.searchsorted(positions, positions[last] - windows.longest_sample)))


def _copies(
    chunk: np.ndarray,
    file: str,
    offset: int,
    positions: np.ndarray,
    ids: np.ndarray,
    windows: _SampleWindows,
    n: int,
    best: _Best,
) -> None:
    """Runs of pairs (j, s), (j + 1, s + 1), ... are copies; each sample keeps its longest, checked."""
    counts = windows.id_count[ids]
    total = int(counts.sum())
    corpus_at = np.repeat(positions, counts)  # (pairs,)
    within = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    sample_at = windows.by_id[np.repeat(windows.id_start[ids], counts) + within]
    diagonal = sample_at - corpus_at
    order = np.lexsort((corpus_at, diagonal))
    corpus_at, diagonal = corpus_at[order], diagonal[order]
    starts = np.flatnonzero(
        np.concatenate([[True], (diagonal[1:] != diagonal[:-1]) | (corpus_at[1:] != corpus_at[:-1] + 1)])
    )
    lengths = np.diff(np.append(starts, total)) + n - 1  # bytes
    run_corpus = corpus_at[starts]
    run_sample = run_corpus + diagonal[starts]
    owner = windows.owner[run_sample]
    better = lengths > best.length[owner]
    if not better.any():
        return
    lengths, run_corpus, run_sample, owner = (
        lengths[better],
        run_corpus[better],
        run_sample[better],
        owner[better],
    )
    for i in np.lexsort((-lengths, owner)):  # each sample's candidates, longest first
        sample, length = int(owner[i]), int(lengths[i])
        if length <= best.length[sample]:
            continue
        s, j = int(run_sample[i]), int(run_corpus[i])
        # Byte for byte: a hash collision, or a chain of n-grams from different places, is no copy.
        if np.array_equal(chunk[j : j + length], windows.data[s : s + length]):
            best.length[sample], best.sample_at[sample] = length, s
            best.places[sample] = (file, offset + j)


def _copy_text(windows: _SampleWindows, best: _Best, sample: int) -> Copy | None:
    place = best.places[sample]
    if place is None:
        return None
    start = int(best.sample_at[sample])
    end, sample_end = start + int(best.length[sample]), int(windows.ends[sample])
    data = windows.data
    first = start
    while first < end and data[first] & 0xC0 == 0x80:  # not inside a character
        first += 1
    while end > first and end < sample_end and data[end] & 0xC0 == 0x80:
        end -= 1
    text = data[first:end].tobytes().decode("utf-8")
    return Copy(text=text, chars=len(text), file=place[0], byte=place[1] + first - start)


@dataclass(frozen=True)
class CorpusMatches:
    """Per sample: its longest copy, its windows that start a character, how many the corpus holds."""

    copies: tuple[Copy | None, ...]
    lower_bound: tuple[bool, ...]  # the sample repeats a window more than MAX_POSITIONS times
    ngrams: tuple[int, ...]
    ngrams_found: tuple[int, ...]
    corpus_files: tuple[str, ...]
    corpus_bytes: int


def find_in_corpus(
    samples: Sequence[str], corpus: Sequence[str | Path], n: int, chunk_bytes: int = CHUNK_BYTES
) -> CorpusMatches:
    """The samples' n-byte windows and longest copies in the corpus files (or folders of *.txt)."""
    files = corpus_files(corpus)
    powers = _Powers()
    windows = _SampleWindows(samples, n, powers)
    found = np.zeros(len(windows.unique), dtype=bool)
    count = len(samples)
    best = _Best(np.zeros(count, dtype=np.int64), np.zeros(count, dtype=np.int64), [None] * count)
    overlap = max(windows.longest_sample, n)
    corpus_bytes = 0
    for path in files:
        size = 0
        for offset, chunk in _chunks(path, chunk_bytes, overlap):
            if len(windows.unique):
                _scan_chunk(chunk, str(path), offset, windows, n, powers, found, best)
            size = offset + len(chunk)
        corpus_bytes += size
    owner = windows.owner[windows.positions]
    ngrams = np.bincount(owner[windows.counted], minlength=count)
    ngrams_found = np.bincount(owner[found[windows.ids] & windows.counted], minlength=count)
    return CorpusMatches(
        copies=tuple(_copy_text(windows, best, i) for i in range(count)),
        lower_bound=tuple(bool(x) for x in windows.lower_bound),
        ngrams=tuple(int(x) for x in ngrams),
        ngrams_found=tuple(int(x) for x in ngrams_found),
        corpus_files=tuple(str(f) for f in files),
        corpus_bytes=corpus_bytes,
    )
