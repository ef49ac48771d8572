from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch

from lstmtext.config import TokenizerConfig
from lstmtext.corpora.samples import sample_text, write_sample_text
from lstmtext.data.corpus import TokenStream, cached_ids, fit_batch_shape, split_ids
from lstmtext.data.sources import read_text
from lstmtext.data.tokenizer import TextTokenizer
from lstmtext.errors import CorpusError

PNG_HEADER = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10"

# ---- read_text


def test_files_and_directories_are_joined_with_newlines(tmp_path: Path) -> None:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "b.txt").write_text("bee")
    (tmp_path / "d" / "sub" / "c.txt").write_text("sea\n")
    (tmp_path / "d" / "a.txt").write_text("ay")
    (tmp_path / "d" / "notes.md").write_text("ignored")
    single = tmp_path / "one.txt"
    single.write_text("one\n")
    assert read_text([str(single), str(tmp_path / "d")]) == "one\nay\nbee\nsea\n"


def test_stdin(tmp_path: Path) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(b"from stdin\n"), encoding="utf-8")
    assert read_text(["-"], stdin=stdin) == "from stdin\n"
    assert read_text(["-"], stdin=io.StringIO("plain")) == "plain"


def test_other_encoding_and_replace(tmp_path: Path) -> None:
    path = tmp_path / "latin.txt"
    path.write_bytes("café au lait".encode("latin-1"))
    assert read_text([str(path)], encoding="latin-1") == "café au lait"
    assert read_text([str(path)], errors="replace") == "caf\ufffd au lait"


def _bad_source(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / kind
    if kind == "empty.txt":
        path.write_bytes(b"")
    elif kind == "blank.txt":
        path.write_bytes(b" \n\t\n")
    elif kind == "image.png":
        path.write_bytes(PNG_HEADER)
    elif kind == "no-text-dir":
        path.mkdir()
        (path / "readme.md").write_text("not a .txt")
    return path  # "missing.txt" is never created


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing.txt", "no such file"),
        ("empty.txt", "is empty"),
        ("blank.txt", "only whitespace"),
        ("image.png", "looks binary"),
        ("no-text-dir", "no .txt files"),
    ],
)
def test_corpus_errors_name_the_file(tmp_path: Path, kind: str, message: str) -> None:
    path = _bad_source(tmp_path, kind)
    with pytest.raises(CorpusError, match=message) as error:
        read_text([str(path)])
    text = str(error.value)
    assert str(path) in text and "\n" not in text


def test_invalid_utf8_gives_the_offset_and_a_way_out(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(b"hello w\xe9rld")
    with pytest.raises(CorpusError) as error:
        read_text([str(path)])
    message = str(error.value)
    assert str(path) in message and "byte 7" in message and "0xe9" in message
    assert "--encoding" in message and "--errors replace" in message


def test_unknown_name_is_a_clear_error() -> None:
    with pytest.raises(CorpusError, match="no such file or directory, nor a corpus name"):
        read_text(["no-such-corpus"])


# ---- split and batches


def test_split_ids_is_nanogpt_style() -> None:
    ids = np.arange(100, dtype=np.uint16)
    train, val = split_ids(ids, 0.1)
    assert train.tolist() == list(range(90)) and val.tolist() == list(range(90, 100))
    assert np.shares_memory(train, ids)
    assert len(split_ids(ids, 0.0)[1]) == 0


def test_token_stream_shapes_and_rows() -> None:
    ids = np.arange(26 * 4 + 3, dtype=np.uint16)  # 3 tail tokens are dropped
    stream = TokenStream(ids, batch_size=4, seq_len=10)
    assert stream.rows.shape == (4, 26)
    assert np.shares_memory(stream.rows, ids)  # no copy of the stream
    assert len(stream) == 3  # 25 input positions per row: 10 + 10 + 5
    x, y = stream.batch(0)
    assert x.dtype == torch.int64 and x.shape == (4, 10) and y.shape == (4, 10)
    assert x[1].tolist() == list(range(26, 36))  # row 1 is the second contiguous slice
    assert torch.equal(y[:, :-1], x[:, 1:])
    x2, _ = stream.batch(1)
    assert torch.equal(x2[:, 0], y[:, -1])  # the next batch continues each row
    x_last, y_last = stream.batch(2)
    assert x_last.shape == (4, 5) and y_last[0, -1].item() == 25
    with pytest.raises(IndexError):
        stream.batch(3)
    assert len(list(stream)) == 3


def test_token_stream_too_short() -> None:
    with pytest.raises(CorpusError, match="fit_batch_shape"):
        TokenStream(np.arange(5), batch_size=4, seq_len=10)


def test_fit_batch_shape() -> None:
    assert fit_batch_shape(10_000, 64, 100) == (64, 100, None)
    batch, seq, warning = fit_batch_shape(1_000, 64, 100)
    assert (batch, seq) == (9, 100) and warning and "64 -> 9" in warning
    batch, seq, warning = fit_batch_shape(50, 64, 100)
    assert (batch, seq) == (1, 49) and warning
    TokenStream(np.arange(50), batch, seq).batch(0)
    assert fit_batch_shape(2, 8, 8)[:2] == (1, 1)
    with pytest.raises(CorpusError, match="at least 2"):
        fit_batch_shape(1, 8, 8)


# ---- id cache


@pytest.mark.parametrize("level", ["char", "word", "bpe"])
def test_cached_ids_equal_the_whole_encoding(level: str, tmp_path: Path) -> None:
    text = sample_text(30_000, seed=2) + "naïve 😀 end\n  \n\nlast"
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(text, encoding="utf-8")
    tokenizer = TextTokenizer.train([text], TokenizerConfig(level=level, vocab_size=300))
    progress: list[tuple[int, int]] = []
    ids = cached_ids(
        corpus, tokenizer, tmp_path / "cache", chunk_bytes=997, on_progress=lambda *a: progress.append(a)
    )
    assert ids.tolist() == tokenizer.encode(text)
    assert progress[-1] == (len(text.encode()), len(text.encode())) and len(progress) > 10


def test_cached_ids_reuse_and_invalidation(tmp_path: Path) -> None:
    corpus = write_sample_text(tmp_path / "corpus.txt", 5_000, seed=1)
    tokenizer = TextTokenizer.train([corpus.read_text()], TokenizerConfig(level="char"))
    cache = tmp_path / "cache"
    first = cached_ids(corpus, tokenizer, cache)
    assert isinstance(first, np.memmap)
    files = list(cache.glob("*.npy"))
    assert len(files) == 1
    mtime = files[0].stat().st_mtime_ns
    second = cached_ids(corpus, tokenizer, cache)
    assert isinstance(second, np.memmap) and np.array_equal(first, second)
    assert files[0].stat().st_mtime_ns == mtime  # reused, not rewritten

    with corpus.open("a") as f:
        f.write("more text\n")
    third = cached_ids(corpus, tokenizer, cache)
    assert len(third) == len(first) + 10
    assert [p.name for p in cache.glob("*.npy")] != [files[0].name]  # stale cache removed
    assert len(list(cache.iterdir())) == 1  # and no temp files

    other = TextTokenizer.train(["xyz\n"], TokenizerConfig(level="char"))
    cached_ids(corpus, other, cache)
    assert len(list(cache.iterdir())) == 1


def test_cached_ids_errors(tmp_path: Path) -> None:
    tokenizer = TextTokenizer.train(["abc\n"], TokenizerConfig(level="char"))
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"abc\n" * 300 + b"\xff")
    with pytest.raises(CorpusError, match="byte 1200"):
        cached_ids(bad, tokenizer, tmp_path / "cache", chunk_bytes=100)
    png = tmp_path / "x.png"
    png.write_bytes(PNG_HEADER)
    with pytest.raises(CorpusError, match="binary"):
        cached_ids(png, tokenizer, tmp_path / "cache")
    with pytest.raises(CorpusError, match="missing"):
        cached_ids(tmp_path / "missing.txt", tokenizer, tmp_path / "cache")
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.endswith(".tmp")]
