from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lstmtext.config import TokenizerConfig
from lstmtext.corpora.samples import sample_text
from lstmtext.data.text_pieces import split_blocks
from lstmtext.data.tokenizer import EOS, PAD, UNK, TextTokenizer
from lstmtext.errors import TokenizerError

PTB_TRAIN = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "ptb" / "train.txt"

HARD_TEXTS = [
    "",
    " ",
    "\n",
    "\r\n",
    "a\r\nb\rc\n",
    "\ttabs\tand  double  spaces  ",
    "emoji 😀👍🏽 and flags 🇫🇷",
    "中文字符，日本語のテキスト",
    "decomposed e\u0301 and a\u0308 stay decomposed",
    "composed é and decomposed e\u0301",
    "<unk> <pad> <eos> <0x41> literal specials",
    "\x00\x7f\x80\uffff\U0010ffff",
    "trailing newline\n\n",
]


@functools.cache
def trained(level: str) -> TextTokenizer:
    # Trained once per module: hypothesis calls the tests hundreds of times.
    return TextTokenizer.train([sample_text(20_000, seed=1)], TokenizerConfig(level=level, vocab_size=300))


@pytest.mark.parametrize("level", ["char", "bpe"])
@pytest.mark.parametrize("text", HARD_TEXTS)
def test_round_trip_hard_cases(level: str, text: str) -> None:
    tokenizer = trained(level)
    ids = tokenizer.encode(text)
    assert tokenizer.decode(ids) == text
    assert tokenizer.encode_array(text).tolist() == ids


@settings(max_examples=150, deadline=None)
@given(st.text())
def test_char_round_trips_any_text(text: str) -> None:
    tokenizer = trained("char")
    ids = tokenizer.encode(text)
    assert tokenizer.decode(ids) == text
    assert tokenizer.encode_array(text).tolist() == ids  # the numpy fast path equals HF


@settings(max_examples=100, deadline=None)
@given(st.text())
def test_bpe_round_trips_any_text(text: str) -> None:
    tokenizer = trained("bpe")
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_special_ids_are_fixed() -> None:
    for level in ("char", "word", "bpe"):
        tokenizer = trained(level)
        assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.eos_id) == (0, 1, 2)
        assert [tokenizer.id_to_token(i) for i in range(3)] == [PAD, UNK, EOS]
        assert tokenizer.token_to_id(EOS) == 2
        assert tokenizer.level == level


def test_char_fast_path_equals_hf_with_unseen_characters() -> None:
    tokenizer = trained("char")
    text = sample_text(5_000, seed=3) + "☃ naïve 😀 日本 e\u0301\r\n" * 20
    fast = tokenizer.encode_array(text)
    assert fast.dtype == np.uint16
    assert fast.tolist() == tokenizer.encode(text)
    assert tokenizer.unknown_characters(text) >= {"☃", "😀", "日", "ï", "\u0301"}


def test_char_vocab_is_specials_bytes_and_corpus_characters() -> None:
    tokenizer = TextTokenizer.train(["abca\n"], TokenizerConfig(level="char"))
    assert tokenizer.vocab_size == 3 + 256 + 4
    assert tokenizer.token_to_id("<0x00>") == 3
    assert tokenizer.unknown_characters("abcz") == {"z"}


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.sampled_from(["ab", "c!", "\n", " ", "\n\n", "  \n", "x\ny", "é", "\t", "\n x", " \n 9"]),
        max_size=60,
    )
)
def test_bpe_blocks_concatenate_to_the_whole_encoding(pieces: list[str]) -> None:
    tokenizer = trained("bpe")
    text = "".join(pieces)
    blocks = split_blocks(text, 4)
    assert "".join(blocks) == text
    assert len(split_blocks(" a \n b \n c \n", 1)) == 3  # PTB's line starts are cut places
    by_block = [i for block in blocks for i in tokenizer.encode(block)]
    assert by_block == tokenizer.encode(text)


@pytest.mark.parametrize("level", ["word", "bpe"])
def test_encode_array_on_many_blocks(level: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("lstmtext.data.tokenizer._BLOCK_CHARS", 100)
    tokenizer = trained(level)
    text = sample_text(10_000, seed=5).replace("\n", " \n ") + "\r\n end"
    assert tokenizer.encode_array(text).tolist() == tokenizer.encode(text)


@pytest.mark.parametrize("level", ["char", "word", "bpe"])
def test_save_load_gives_identical_encodings(level: str, tmp_path: Path) -> None:
    tokenizer = trained(level)
    path = tmp_path / "tokenizer.json"
    tokenizer.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["tokenizer.json"]  # no temp file left
    loaded = TextTokenizer.load(path)
    text = sample_text(2_000, seed=9) + "😀 zebra\n"
    assert loaded.level == level
    assert loaded.vocab_size == tokenizer.vocab_size
    assert loaded.encode(text) == tokenizer.encode(text)
    assert loaded.encode_array(text).tolist() == tokenizer.encode_array(text).tolist()
    assert loaded.to_str() == tokenizer.to_str()


def test_saved_json_is_plain_hugging_face() -> None:
    from tokenizers import Tokenizer

    tokenizer = trained("word")
    assert Tokenizer.from_str(tokenizer.to_str()).encode("the king").ids == tokenizer.encode("the king")


@pytest.mark.parametrize("garbage", ["", "not json", "[]", '{"model": 3}', json.dumps({"version": "1.0"})])
def test_from_str_rejects_garbage(garbage: str) -> None:
    with pytest.raises(TokenizerError):
        TextTokenizer.from_str(garbage)


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TokenizerError, match="cannot read"):
        TextTokenizer.load(tmp_path / "nope.json")


# ---- word level


def test_word_level_eos_unk_and_decode() -> None:
    tokenizer = TextTokenizer.train(["the cat sat\nthe dog sat\n"], TokenizerConfig(level="word"))
    ids = tokenizer.encode("the cat  ran\r\nthe <unk> sat\n")
    words = [tokenizer.id_to_token(i) for i in ids]
    assert words == ["the", "cat", UNK, EOS, "the", UNK, "sat", EOS]
    assert ids[2] == ids[5] == tokenizer.unk_id
    assert tokenizer.decode(ids) == "the cat <unk>\nthe <unk> sat\n"
    assert tokenizer.unknown_characters("the cow sat") == {"cow"}


def test_word_vocab_order_min_frequency_and_max_vocab() -> None:
    text = "b b b a a a c c d\n"
    full = TextTokenizer.train([text], TokenizerConfig(level="word"))
    # Most frequent first, ties alphabetical; ids 0-2 are the specials.
    assert [full.id_to_token(i) for i in range(3, full.vocab_size)] == ["a", "b", "c", "d"]
    frequent = TextTokenizer.train([text], TokenizerConfig(level="word", min_frequency=2))
    assert frequent.vocab_size == 3 + 3
    assert frequent.encode("d") == [frequent.unk_id]
    capped = TextTokenizer.train([text], TokenizerConfig(level="word", max_vocab=5))
    assert capped.vocab_size == 5
    assert capped.token_to_id("b") == 4 and capped.token_to_id("c") is None


def test_word_lowercase() -> None:
    tokenizer = TextTokenizer.train(["The THE the\n"], TokenizerConfig(level="word", lowercase=True))
    assert tokenizer.vocab_size == 4
    assert tokenizer.encode("tHe") == [3]
    loaded = TextTokenizer.from_str(tokenizer.to_str())
    assert loaded.encode("THE") == [3]


def test_word_level_nothing_frequent_enough() -> None:
    with pytest.raises(TokenizerError):
        TextTokenizer.train(["a b c"], TokenizerConfig(level="word", min_frequency=2))


@pytest.mark.skipif(not PTB_TRAIN.exists(), reason="shared PTB corpus not present")
def test_ptb_train_token_count() -> None:
    text = PTB_TRAIN.read_text(encoding="utf-8")
    tokenizer = TextTokenizer.train([text], TokenizerConfig(level="word"))
    ids = tokenizer.encode_array(text)
    assert len(ids) == 929_589  # 887,521 words + 42,068 <eos>
    assert int((ids == tokenizer.eos_id).sum()) == 42_068
    assert tokenizer.vocab_size == 3 + 9_998  # PTB's 10k words include <unk> and our <eos>
    assert tokenizer.unknown_characters(text[:10_000]) == set()
