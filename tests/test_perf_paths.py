"""The performance paths: the memory-mapped id cache of big corpora, precision and threads."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lstmtext import device
from lstmtext.config import TokenizerConfig, TrainConfig
from lstmtext.data.corpus import cached_ids, release_pages
from lstmtext.data.tokenizer import TextTokenizer
from lstmtext.device import cpu_has_fast_bf16, resolve_precision
from lstmtext.errors import ConfigError, CorpusError
from lstmtext.lm import api as language_model
from lstmtext.lm.api import ModelShape, TrainResult, train_language_model

from .conftest import TINY_TEXT, TINY_TRAIN_ARGS

SHAPE = ModelShape(embedding_dim=8, hidden_size=16, num_layers=1, dropout=0.0)
# Multi-byte characters of every UTF-8 length, so that small chunks fall inside them.
MIXED = "plain ascii line\nél café naïve\n漢字かな混じり\n🙂 emoji 🚀 two\n" * 6 + "no newline at the end 🙂"


def train_tiny(corpus: Path, out: Path, steps: int = 2, **options: Any) -> TrainResult:
    """SHAPE trained on `corpus` at char level for `steps` steps into `out`; `options` go to
    train_language_model."""
    train = TrainConfig(seq_len=8, batch_size=2, max_steps=steps, eval_every=2, eval_batches=1, patience=None)
    return train_language_model([str(corpus)], TokenizerConfig("char"), SHAPE, train, out, **options)


def trainer_ids(monkeypatch: pytest.MonkeyPatch) -> list[np.ndarray]:
    """The train ids each Trainer is built with, as the Trainer received them."""
    seen: list[np.ndarray] = []
    original = language_model.language_model_trainer

    def spy(run_config, tokenizer, train_ids, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(train_ids)
        return original(run_config, tokenizer, train_ids, *args, **kwargs)

    monkeypatch.setattr(language_model, "language_model_trainer", spy)
    return seen


# ---- which path training takes


def test_a_big_file_reaches_the_trainer_memory_mapped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = tmp_path / "big.txt"
    corpus.write_text(TINY_TEXT, encoding="utf-8")
    seen = trainer_ids(monkeypatch)
    events = []
    train_tiny(corpus, tmp_path / "run", big_corpus_bytes=1, on_event=events.append)  # every file is "big"
    assert isinstance(seen[0], np.memmap)
    # The default cache sits beside the corpus, so every run on it shares one.
    assert len(list((tmp_path / ".lstmtext-cache").glob("big-*.npy"))) == 1
    prepare = [e for e in events if e.kind == "prepare"]
    assert prepare and prepare[-1].step == prepare[-1].total_steps == corpus.stat().st_size


def test_a_small_file_is_read_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = tmp_path / "small.txt"
    corpus.write_text(TINY_TEXT, encoding="utf-8")
    seen = trainer_ids(monkeypatch)
    train_tiny(corpus, tmp_path / "run")
    assert not isinstance(seen[0], np.memmap)
    assert not (tmp_path / ".lstmtext-cache").exists()


def test_memory_mapped_and_in_memory_training_agree(tmp_path: Path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text(TINY_TEXT, encoding="utf-8")
    results = [
        train_tiny(corpus, tmp_path / name, steps=4, big_corpus_bytes=threshold)
        for name, threshold in (("mapped", 1), ("memory", 1 << 40))
    ]
    assert results[0].last_loss == results[1].last_loss
    assert results[0].best_val_loss == results[1].best_val_loss


def test_cache_dir_is_refused_for_what_cannot_be_mapped(tmp_path: Path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text(TINY_TEXT, encoding="latin-1")
    with pytest.raises(ConfigError, match="--cache-dir"):
        train_tiny(corpus, tmp_path / "run", encoding="latin-1", cache_dir=tmp_path / "cache")


def test_cli_cache_dir_tokenises_once(cli, tiny_corpus: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    args = ["train", str(tiny_corpus), "--cache-dir", str(cache), *TINY_TRAIN_ARGS, "--max-steps", "2"]
    first = cli([*args, "--out", str(tmp_path / "one")])
    assert first.exit_code == 0, first.stderr
    assert "tokenising tiny.txt" in first.stderr and "100 %" in first.stderr
    second = cli([*args, "--out", str(tmp_path / "two")])
    assert second.exit_code == 0, second.stderr
    assert "tokenising" not in second.stderr  # a cache hit
    assert len(list(cache.glob("*.npy"))) == 1


# ---- the cache


def char_tokenizer(text: str = MIXED) -> TextTokenizer:
    return TextTokenizer.train([text], TokenizerConfig("char"))


def test_cache_is_reused_while_the_corpus_is_unchanged(tmp_path: Path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text(MIXED, encoding="utf-8")
    tokenizer = char_tokenizer()
    calls: list[int] = []
    first = cached_ids(
        corpus, tokenizer, tmp_path / "cache", on_progress=lambda done, total: calls.append(done)
    )
    assert isinstance(first, np.memmap) and calls
    calls.clear()
    again = cached_ids(
        corpus, tokenizer, tmp_path / "cache", on_progress=lambda done, total: calls.append(done)
    )
    assert calls == [] and np.array_equal(first, again)


@pytest.mark.parametrize("change", ["append", "same size and mtime"])
def test_a_changed_corpus_invalidates_the_cache(tmp_path: Path, change: str) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text(MIXED, encoding="utf-8")
    tokenizer = char_tokenizer()
    cache = tmp_path / "cache"
    before = np.array(cached_ids(corpus, tokenizer, cache))
    stat = corpus.stat()
    if change == "append":
        new_text = MIXED + "\nmore text"
        corpus.write_text(new_text, encoding="utf-8")
    else:
        # An edit that keeps size and mtime (a copy with preserved times): the content hash sees it.
        new_text = "X" + MIXED[1:]
        corpus.write_text(new_text, encoding="utf-8")
        os.utime(corpus, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        assert corpus.stat().st_size == stat.st_size
    after = cached_ids(corpus, tokenizer, cache)
    assert np.array_equal(after, tokenizer.encode_array(new_text))
    assert not np.array_equal(after, before)
    assert len(list(cache.glob("*.npy"))) == 1  # the stale cache is gone


def test_a_changed_tokenizer_invalidates_the_cache(tmp_path: Path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text(MIXED, encoding="utf-8")
    cached_ids(corpus, char_tokenizer(), tmp_path / "cache")
    other = char_tokenizer("only these letters")
    assert np.array_equal(cached_ids(corpus, other, tmp_path / "cache"), other.encode_array(MIXED))


@settings(max_examples=25, deadline=None)
@given(chunk_bytes=st.integers(min_value=1, max_value=64), level=st.sampled_from(["char", "word", "bpe"]))
def test_chunks_never_split_a_character_or_change_the_ids(
    tmp_path_factory: pytest.TempPathFactory, chunk_bytes: int, level: str
) -> None:
    tmp = tmp_path_factory.mktemp("chunks")
    corpus = tmp / "c.txt"
    corpus.write_text(MIXED, encoding="utf-8")
    tokenizer = TextTokenizer.train([MIXED], TokenizerConfig(level, vocab_size=300))
    ids = cached_ids(corpus, tokenizer, tmp / "cache", chunk_bytes=chunk_bytes)
    assert np.array_equal(ids, tokenizer.encode_array(MIXED))
    assert tokenizer.decode(ids.tolist()) == tokenizer.decode(tokenizer.encode_array(MIXED).tolist())


@pytest.mark.parametrize("chunk_bytes", [3, 5, 7])
def test_a_long_line_is_cut_between_characters_at_char_level(tmp_path: Path, chunk_bytes: int) -> None:
    # No newline for hundreds of bytes: the char level cuts at character boundaries instead of
    # holding the whole line (which, in a real file, may be gigabytes).
    text = "é漢🙂a" * 100
    corpus = tmp_path / "line.txt"
    corpus.write_text(text, encoding="utf-8")
    tokenizer = char_tokenizer(text)
    progress: list[int] = []
    ids = cached_ids(
        corpus,
        tokenizer,
        tmp_path / "cache",
        chunk_bytes=chunk_bytes,
        on_progress=lambda d, t: progress.append(d),
    )
    assert np.array_equal(ids, tokenizer.encode_array(text))
    assert len(progress) > 10  # it went in pieces


def test_invalid_utf8_late_in_the_file_leaves_no_cache(tmp_path: Path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_bytes(MIXED.encode("utf-8") * 3 + b"\nbad \xff byte\n")
    cache = tmp_path / "cache"
    with pytest.raises(CorpusError, match="not valid UTF-8 at byte"):
        cached_ids(corpus, char_tokenizer(), cache, chunk_bytes=16)
    assert list(cache.iterdir()) == []  # neither a cache nor a temporary file


def test_release_pages_keeps_the_data(tmp_path: Path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text(MIXED, encoding="utf-8")
    tokenizer = char_tokenizer()
    ids = cached_ids(corpus, tokenizer, tmp_path / "cache")
    rows = ids[: len(ids) // 4 * 4].reshape(4, -1)  # as TokenStream views it
    before = np.array(rows)
    release_pages(rows)
    assert np.array_equal(rows, before)
    release_pages(np.arange(10))  # in memory: nothing to do


# ---- precision and threads


def test_fast_bf16_is_read_from_the_cpu_flags() -> None:
    intel = "model name\t: Intel Xeon\nflags\t\t: fpu sse avx512f amx_bf16 amx_tile\n"
    zen4 = "model name\t: AMD EPYC\nflags\t\t: fpu avx512f avx512_bf16 avx512_vnni\n"
    older = "model name\t: AMD EPYC bf16 edition\nflags\t\t: fpu avx2 avx512f avx512bw\n"
    assert cpu_has_fast_bf16(intel) and cpu_has_fast_bf16(zen4)
    assert not cpu_has_fast_bf16(older)  # only the flags count, not the name
    assert not cpu_has_fast_bf16("")


def test_auto_precision_follows_the_hardware(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    for fast_bf16, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(device, "cpu_has_fast_bf16", lambda fast=fast_bf16: fast)
        assert resolve_precision("auto", cpu) == expected
        assert resolve_precision("fp32", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        resolve_precision("fp16", cpu)


def test_generate_threads_option_is_applied_and_restored(cli, tiny_lm: Path) -> None:
    before = torch.get_num_threads()
    result = cli(["generate", "--model", str(tiny_lm), "--seed", "To", "--length", "5", "--threads", "1"])
    assert result.exit_code == 0, result.stderr
    assert torch.get_num_threads() == before
    refused = cli(["generate", "--model", str(tiny_lm), "--threads", "0"])
    assert refused.exit_code == 2
