"""`lstmtext copies` and the measures under it: copies found whole and placed, none in random
text, chunk boundaries, distinct-n and repetition on hand-counted examples, and the errors."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from lstmtext.errors import ConfigError, CorpusError
from lstmtext.lm.copying import distinct, measure_copying, repetition_rate, words

from .conftest import TINY_TEXT, error_line, run_cli


def prose(seed: int, size: int) -> str:
    """Random lower-case words: text that shares no long span with anything."""
    rng = random.Random(seed)
    out: list[str] = []
    while sum(len(w) + 1 for w in out) < size:
        out.append("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))))
    return " ".join(out)[:size]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(prose(1, 20_000), encoding="utf-8")
    return path


def test_a_planted_copy_is_found_whole_with_its_place(corpus: Path) -> None:
    text = corpus.read_text(encoding="utf-8")
    span = text[5_000:5_200]
    sample = "Zq Xv! " + span + " !Qz"
    report = measure_copying([sample, prose(2, 600)], [corpus])
    copied = report.samples[0].longest
    assert copied is not None and copied.chars >= 200 and span in copied.text
    assert text.encode()[copied.byte : copied.byte + len(copied.text.encode())].decode() == copied.text
    assert report.longest_chars == copied.chars and report.samples[0].ngram_share > 0.7
    # Random text: nothing of n bytes or more is copied, and no n-gram is found.
    other = report.samples[1]
    assert other.longest_chars < 12 and other.ngram_share is not None and other.ngram_share < 0.02


def test_a_copy_straddling_chunks_is_found(corpus: Path) -> None:
    text = corpus.read_text(encoding="utf-8")
    span = text[1_900:2_150]  # across the boundary of 2,000-byte chunks, and of 333-byte ones
    for chunk in (2_000, 333, 1 << 20):
        report = measure_copying(["!" + span + "!"], [corpus], chunk_bytes=chunk)
        assert report.samples[0].longest_chars == 250, chunk
        assert report.samples[0].ngram_share > 0.95  # all but the two windows with a "!"


def test_ngrams_chained_from_different_places_are_no_copy(tmp_path: Path) -> None:
    # Every 12-byte window of the sample is in the corpus, but the whole is in no one place.
    corpus = tmp_path / "c.txt"
    corpus.write_text("alpha bravo charlie delta echo|charlie delta echo foxtrot golf\n", encoding="utf-8")
    report = measure_copying(["alpha bravo charlie delta echo foxtrot golf"], [corpus])
    sample = report.samples[0]
    assert sample.ngram_share == 1.0
    assert sample.longest is not None and sample.longest.text == "charlie delta echo foxtrot golf"


def test_non_ascii_copies_are_whole_characters(tmp_path: Path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text("Der Bär läuft über die Brücke, grüßend.\n" * 3, encoding="utf-8")
    report = measure_copying(["«läuft über die Brücke»"], [corpus])
    assert report.samples[0].longest.text == "läuft über die Brücke"  # type: ignore[union-attr]
    assert report.samples[0].longest_chars == 21


def test_word_measures_on_hand_counted_examples() -> None:
    assert words("The cat's hat, the CAT.") == ["the", "cat's", "hat", "the", "cat"]
    # 6 words, 4 distinct; bigrams stay inside a sample: the cat, cat sat, the cat, cat ran.
    assert distinct(["the cat sat", "the cat ran"], 1) == pytest.approx(4 / 6)
    assert distinct(["the cat sat", "the cat ran"], 2) == pytest.approx(3 / 4)
    # a b c d a b c d: 5 four-grams, "a b c d" once again: 1 of 5 repeats.
    assert repetition_rate(["a b c d a b c d"]) == pytest.approx(1 / 5)
    assert repetition_rate(["x x x x x x"]) == pytest.approx(2 / 3)
    assert repetition_rate(["one two three four five"]) == 0.0
    assert repetition_rate(["too short"]) is None and distinct([""], 1) is None
    # Pooled: the repeats of all samples over all their 4-grams.
    assert repetition_rate(["a b c d a b c d", "one two three four five"]) == pytest.approx(1 / 7)


def test_errors(tmp_path: Path, corpus: Path) -> None:
    binary = tmp_path / "b.bin"
    binary.write_bytes(b"text\x00\x01\x02" * 10)
    with pytest.raises(CorpusError, match="binary"):
        measure_copying(["some sample text here"], [binary])
    with pytest.raises(CorpusError, match="no such file"):
        measure_copying(["some sample text here"], [tmp_path / "missing.txt"])
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(CorpusError, match="empty"):
        measure_copying(["some sample text here"], [empty])
    with pytest.raises(ConfigError, match="empty"):
        measure_copying(["", "  "], [corpus])


def test_copies_command_generates_and_measures(tiny_lm: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "tiny.txt"
    corpus.write_text(TINY_TEXT, encoding="utf-8")
    args = ["copies", "--model", str(tiny_lm), "--corpus", str(corpus), "--samples", "2", "--length", "40"]
    result = run_cli([*args, "--json"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert len(report["samples"]) == 2 and report["corpus_bytes"] == len(TINY_TEXT)
    assert {"longest_chars", "ngram_share", "distinct_1", "distinct_2", "repetition"} <= set(
        report["overall"]
    )
    table = run_cli(args)
    assert table.exit_code == 0 and "longest" in table.stdout and "all" in table.stdout
    # Texts given instead of generated: blank-line blocks, and generate's JSON lines on stdin.
    given = tmp_path / "samples.txt"
    given.write_text(TINY_TEXT[:150] + "\n\nnothing like it at all, qxz\n", encoding="utf-8")
    result = run_cli(["copies", "--corpus", str(corpus), "--samples-file", str(given), "--json"])
    samples = json.loads(result.stdout)["samples"]
    assert len(samples) == 2 and samples[0]["longest_chars"] >= 140 and samples[1]["longest_chars"] == 0
    lines = "".join(json.dumps({"sample": i, "text": t}) + "\n" for i, t in enumerate(["To be, or not", "x"]))
    result = run_cli(["copies", "-c", str(corpus), "--samples-file", "-", "--json"], input=lines)
    assert result.exit_code == 0 and len(json.loads(result.stdout)["samples"]) == 2
    # Errors: one line each.
    missing = run_cli(["copies", "--corpus", str(tmp_path / "nope.txt"), "--samples-file", str(given)])
    assert missing.exit_code == 1 and "nope.txt" in error_line(missing.stderr)
    (tmp_path / "blank.txt").write_text("\n\n", encoding="utf-8")
    empty = run_cli(["copies", "--corpus", str(corpus), "--samples-file", str(tmp_path / "blank.txt")])
    assert empty.exit_code == 1 and "no samples" in error_line(empty.stderr)
