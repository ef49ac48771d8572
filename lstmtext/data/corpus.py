"""Corpus text in, token-id batches out: read and check sources, split, cache ids, TBPTT streams."""

from __future__ import annotations

import glob
import hashlib
import math
import mmap
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from lstmtext.data.sources import _check_head, open_corpus
from lstmtext.data.text_pieces import bpe_cut_is_exact
from lstmtext.data.tokenizer import TextTokenizer
from lstmtext.errors import CorpusError

# ---- splitting and batching


def split_ids(ids: np.ndarray, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """The first (1 - f) of the stream trains, the last f validates (views, as in nanoGPT)."""
    if not 0.0 <= val_fraction < 1.0:
        raise CorpusError(f"validation fraction must be in [0, 1), not {val_fraction}")
    cut = int(len(ids) * (1.0 - val_fraction))
    return ids[:cut], ids[cut:]


# ids_digest hashes at most this many bytes of ids: a memory-mapped corpus of many GB is
# sampled in evenly spread blocks rather than read whole at every start.
DIGEST_BYTES = 256 << 20
DIGEST_BLOCK = 1 << 20


def ids_digest(*arrays: np.ndarray | None) -> str:
    """sha256 of token-id arrays (their lengths, and their bytes or an even sample of them)."""
    digest = hashlib.sha256()
    for ids in arrays:
        if ids is None:
            digest.update(b"none")
            continue
        data = np.asarray(ids)
        digest.update(f"{data.dtype.str}:{len(data)};".encode())
        step = max(1, DIGEST_BLOCK // max(1, data.itemsize))
        blocks = range(0, len(data), step)
        stride = max(1, math.ceil(len(blocks) * DIGEST_BLOCK / DIGEST_BYTES))
        for start in blocks[::stride]:
            digest.update(np.ascontiguousarray(data[start : start + step]).tobytes())
    return digest.hexdigest()


def fit_batch_shape(num_tokens: int, batch_size: int, seq_len: int) -> tuple[int, int, str | None]:
    """A (batch_size, seq_len) that a stream of num_tokens can fill, and a warning if it changed.

    Each of the batch_size rows needs seq_len + 1 tokens for one full window (inputs plus the
    shifted targets). Fewer rows are given up first, then a shorter window.
    """
    if num_tokens < 2:
        raise CorpusError(f"the corpus has {num_tokens} token(s): at least 2 are needed to learn anything")
    new_batch = max(1, min(batch_size, num_tokens // (seq_len + 1)))
    new_seq = min(seq_len, num_tokens // new_batch - 1)
    if (new_batch, new_seq) == (batch_size, seq_len):
        return batch_size, seq_len, None
    return (
        new_batch,
        new_seq,
        f"only {num_tokens} tokens: batch size {batch_size} -> {new_batch}, seq len {seq_len} -> {new_seq}",
    )


class TokenStream:
    """Truncated-BPTT batches over one token stream.

    The stream (N,) is cut into batch_size contiguous rows (B, L) with L = N // B; the tail
    that does not fill a row is dropped. This is pytorch/examples word_language_model
    ``batchify``, batch-first. With the alphabet and B = 4:

        ┌ a b c d e f ┐   row 0 -> batch row 0 of every batch
        │ g h i j k l │
        │ m n o p q r │
        └ s t u v w x ┘

    Batch i is x = rows[:, i*T : (i+1)*T] and y = the same window shifted one to the right,
    so row b of batch i + 1 continues row b of batch i and the hidden state can be carried
    over (detached). The rows are treated as independent: 'g' cannot learn from 'f', which is
    the price of batching. The last window may be shorter than T.
    """

    def __init__(self, ids: np.ndarray, batch_size: int, seq_len: int) -> None:
        if batch_size < 1 or seq_len < 1:
            raise CorpusError(f"batch size and seq len must be positive, not {batch_size} and {seq_len}")
        row_len = len(ids) // batch_size
        if row_len < 2:
            raise CorpusError(
                f"{len(ids)} tokens cannot fill {batch_size} rows of at least 2 tokens; "
                "use fit_batch_shape to pick a smaller batch"
            )
        self.batch_size = batch_size
        self.seq_len = seq_len
        # A view (no copy) for contiguous input, memory-mapped arrays included.
        self.rows = ids[: batch_size * row_len].reshape(batch_size, row_len)  # (B, L)

    def __len__(self) -> int:
        # Every position but the last of a row is an input: L - 1 of them, in windows of T.
        return -(-self.inputs_per_row // self.seq_len)

    @property
    def inputs_per_row(self) -> int:
        """Positions of a row that are inputs (all but the last): windows tile [0, this)."""
        return self.rows.shape[1] - 1

    def batch(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y), each int64 (B, T); only this window is copied out of the stream."""
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range for {len(self)} batches")
        return self.window(index * self.seq_len, self.seq_len)

    def window(self, start: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y) of the inputs at [start, start + length) of every row, cut at the row's end."""
        if not 0 <= start < self.inputs_per_row or length < 1:
            raise IndexError(f"window ({start}, {length}) out of range for rows of {self.inputs_per_row}")
        end = min(start + length, self.inputs_per_row)
        x = torch.from_numpy(np.ascontiguousarray(self.rows[:, start:end], dtype=np.int64))
        y = torch.from_numpy(np.ascontiguousarray(self.rows[:, start + 1 : end + 1], dtype=np.int64))
        return x, y

    def __iter__(self):  # type: ignore[no-untyped-def]
        return (self.batch(i) for i in range(len(self)))


# ---- id cache for big corpora

_FINGERPRINT_BYTES = 1 << 20  # of the head and of the tail, hashed into the cache key
_MAX_CARRY_BYTES = 64 << 20  # text held back while looking for an exact place to cut


def cached_ids(
    path: Path,
    tokenizer: TextTokenizer,
    cache_dir: Path,
    chunk_bytes: int = 16 << 20,
    on_progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """The token ids (N,) of a UTF-8 file, an ``np.memmap`` of a ``.npy`` cache made on first use.

    The cache file is keyed by the corpus's path, size, mtime, a hash of its first and last MiB
    and the sha256 of the tokenizer's JSON, so a changed corpus or tokenizer makes a new one (the
    stale one is removed). Hashing the whole file would cost as much as tokenising it again.
    The file is tokenised in chunks cut where every level encodes the same as the whole text
    (see ``_cut``), and the ids are written straight into the ``.npy`` file, so neither the
    text nor its ids are ever in memory whole. ``on_progress(done_bytes, total_bytes)`` follows it.
    """
    path = Path(path)
    cache_dir = Path(cache_dir)
    try:
        stat = path.stat()
        fingerprint = _fingerprint(path, stat.st_size)
    except OSError as error:
        raise CorpusError(f"{path}: {error.strerror or 'cannot read'}") from None
    tokenizer_hash = hashlib.sha256(tokenizer.to_str().encode("utf-8")).hexdigest()
    where = hashlib.sha256(str(path.resolve()).encode("utf-8")).hexdigest()[:8]
    key_text = f"{stat.st_size}\0{stat.st_mtime_ns}\0{fingerprint}\0{tokenizer_hash}"
    key = hashlib.sha256(key_text.encode()).hexdigest()[:16]
    stem = f"{path.stem}-{where}"
    final = cache_dir / f"{stem}.{key}.npy"
    if final.exists():
        return np.load(final, mmap_mode="r")

    cache_dir.mkdir(parents=True, exist_ok=True)
    dtype = tokenizer.encode_array("").dtype
    partial = _temp_in(cache_dir, f"{stem}.npy")
    try:
        with partial.open("wb") as out:
            # numpy pads the header so that any length fits in the same bytes: write it now with
            # 0 tokens, the ids after it, then the header again with the count.
            _write_npy_header(out, dtype, 0)
            count = _tokenize_file(path, tokenizer, out, chunk_bytes, stat.st_size, on_progress)
            out.seek(0)
            _write_npy_header(out, dtype, count)
        os.replace(partial, final)
    finally:
        partial.unlink(missing_ok=True)
    for stale in cache_dir.glob(f"{glob.escape(stem)}.*.npy"):
        if stale != final:
            stale.unlink(missing_ok=True)
    return np.load(final, mmap_mode="r")


def release_pages(ids: np.ndarray) -> None:
    """Drop the pages of a memory-mapped id array from this process's resident set.

    Pages read through a file mapping count in RSS until unmapped, so a whole epoch over a
    memory-mapped corpus would end up "resident" (nanoGPT reopens its np.memmap every batch
    for the same reason). MADV_DONTNEED on a read-only file mapping only unmaps: the page
    cache keeps the data and the next read maps it again. A no-op for in-memory arrays.
    """
    mapping = getattr(ids, "_mmap", None)
    if mapping is not None and hasattr(mapping, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        mapping.madvise(mmap.MADV_DONTNEED)


def _fingerprint(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        digest.update(file.read(_FINGERPRINT_BYTES))
        if size > _FINGERPRINT_BYTES:
            file.seek(max(_FINGERPRINT_BYTES, size - _FINGERPRINT_BYTES))
            digest.update(file.read(_FINGERPRINT_BYTES))
    return digest.hexdigest()


def _write_npy_header(out: BinaryIO, dtype: np.dtype, count: int) -> None:
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (count,)}
    np.lib.format.write_array_header_1_0(out, header)


def _tokenize_file(
    path: Path,
    tokenizer: TextTokenizer,
    out: BinaryIO,
    chunk_bytes: int,
    total: int,
    on_progress: Callable[[int, int], None] | None,
) -> int:
    count = 0
    done = 0  # bytes of the file tokenised so far
    carry = b""
    char_level = tokenizer.level == "char"
    file, raw = open_corpus(path)
    with raw, file:
        while True:
            block = file.read(chunk_bytes)
            data = carry + block
            if done == 0:
                _check_head(data, str(path))
            cut = len(data) if not block else _cut(data, bpe=tokenizer.level == "bpe")
            if cut == 0 and char_level and len(data) >= chunk_bytes:
                # A long run without a newline: characters are tokens on their own at char level,
                # so any character boundary will do (never inside a UTF-8 sequence).
                cut = _char_boundary(data)
            elif cut == 0 and len(data) >= max(_MAX_CARRY_BYTES, 4 * chunk_bytes):
                # Word/BPE text with no exact cut for this long: the last newline, so memory stays
                # bounded, at the price of (at most) one merge or word differing at the cut.
                cut = data.rfind(b"\n") + 1
            if cut == 0 and block:
                carry = data  # no newline yet: read on
                continue
            try:
                text = data[:cut].decode("utf-8")
            except UnicodeDecodeError as error:
                raise CorpusError(
                    f"{path}: not valid UTF-8 at byte {done + error.start} (0x{data[error.start]:02x}); "
                    "convert it to UTF-8 or read it with --encoding / --errors replace"
                ) from None
            ids = tokenizer.encode_array(text)
            out.write(ids.tobytes())
            count += len(ids)
            done += cut
            carry = data[cut:]
            if on_progress is not None:  # in the bytes of the file on disk, compressed or not
                on_progress(min(raw.tell(), total) if raw is not file else done, total)
            if not block:
                return count


def _char_boundary(data: bytes) -> int:
    """The last place in data that is not inside a UTF-8 sequence (0 if there is none)."""
    for i in range(len(data) - 1, max(-1, len(data) - 5), -1):
        if data[i] & 0xC0 != 0x80:  # a lead or ASCII byte starts a character
            return i
    return 0


def _cut(data: bytes, bpe: bool) -> int:
    """Where to end a chunk so that it encodes as in the whole text: just after a newline.

    Any newline at char and word level; at BPE level only where ``bpe_cut_is_exact`` allows
    (as ``encode_array`` cuts its blocks). 0 when there is no such place: read on.
    """
    if not bpe:
        return data.rfind(b"\n") + 1
    end = len(data) - 2  # the cut test needs the two bytes after the newline
    while (i := data.rfind(b"\n", 0, end)) > 0:
        if bpe_cut_is_exact(chr(data[i - 1]), chr(data[i + 1]), chr(data[i + 2])):
            return i + 1
        end = i
    return 0


def _temp_in(directory: Path, name: str) -> Path:
    # A fresh name, not an mkstemp file: those are private (0600) and the cache may be shared.
    return directory / f".{name}.{os.urandom(6).hex()}.tmp"
