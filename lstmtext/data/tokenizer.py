"""Char, word and BPE tokenizers on Hugging Face ``tokenizers``, with one set of special tokens.

Every tokenizer has ``<pad>`` = 0, ``<unk>`` = 1 and ``<eos>`` = 2. The HF ``Tokenizer`` does
the real work and its JSON is what we save (``tokenizer.json``, loadable by plain HF). The
level is not stored in an extra field, because HF refuses unknown keys; it is read back from
the pipeline itself (see ``_detect_level``).

Levels and their normalisation:

- ``char``: one token per Unicode code point, no normalisation at all (NFC would alter
  decomposed text), so ``decode(encode(t)) == t`` for any string. Built as a BPE model with
  no merges whose vocabulary is the specials, the 256 byte tokens ``<0x00>``..``<0xFF>`` and
  every character of the training text; a character never seen in training is encoded as
  its UTF-8 bytes (byte fallback) and decodes back to itself.
- ``bpe``: byte-level BPE as in GPT-2 (no prefix space), so nothing is ever unknown and any
  text round-trips exactly.
- ``word``: Mikolov/PTB style. Optional lowercasing, then every line break (``\\r\\n``,
  ``\\r`` or ``\\n``) becomes ``<eos>`` and words are split on whitespace. Words outside the
  vocabulary, and the literal ``<unk>`` that PTB already contains, become ``<unk>``; the
  literal text ``<eos>`` becomes ``<eos>``. Decoding joins words with single spaces and
  turns ``<eos>`` into a newline, so only whitespace (and case, with lowercasing) is lost.

When decoding, ``<pad>`` is dropped everywhere; at char and BPE level ``<eos>`` is dropped
and ``<unk>`` shows as U+FFFD (encoding never produces them there).
"""

from __future__ import annotations

import collections
import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from lstmtext.config import TokenizerConfig
from lstmtext.data.text_pieces import line_blocks, split_blocks, text_pieces
from lstmtext.errors import TokenizerError
from lstmtext.files import atomic_write_text

PAD = "<pad>"
UNK = "<unk>"
EOS = "<eos>"
SPECIAL_TOKENS = (PAD, UNK, EOS)  # their ids are their positions
PAD_ID, UNK_ID, EOS_ID = 0, 1, 2

_BYTE_TOKENS = tuple(f"<0x{b:02X}>" for b in range(256))
_BYTE_OFFSET = len(SPECIAL_TOKENS)  # id of <0x00> in a char vocabulary
_UNICODE_SIZE = 0x110000
_BLOCK_CHARS = 1 << 18  # word/BPE encode_array: blocks of about this size, encoded in parallel


class TextTokenizer:
    """A trained tokenizer of one level; see the module docstring for what each level does."""

    def __init__(self, hf: Tokenizer, level: str) -> None:
        self._hf = hf
        self.level = level
        self._char_table: np.ndarray | None = None  # char level: code point -> id, 0 when unknown

    # ---- building, loading, saving

    @classmethod
    def train(cls, texts: Iterable[str], config: TokenizerConfig) -> TextTokenizer:
        texts = (piece for text in texts for piece in text_pieces(text))
        if config.level == "char":
            return cls(_train_char(texts), "char")
        if config.level == "bpe":
            return cls(_train_bpe(texts, config), "bpe")
        return cls(_train_word(texts, config), "word")

    @classmethod
    def from_str(cls, json_text: str) -> TextTokenizer:
        try:
            hf = Tokenizer.from_str(json_text)
        except Exception as error:  # HF raises plain Exception for any parse failure
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise TokenizerError(f"not a valid tokenizer.json ({message})") from None
        level = _detect_level(json.loads(json_text))
        for token_id, token in enumerate(SPECIAL_TOKENS):
            if hf.token_to_id(token) != token_id:
                raise TokenizerError(f"tokenizer.json does not have {token} at id {token_id}")
        return cls(hf, level)

    @classmethod
    def load(cls, path: Path) -> TextTokenizer:
        try:
            json_text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise TokenizerError(f"cannot read tokenizer {path}: {error}") from None
        return cls.from_str(json_text)

    def to_str(self) -> str:
        return self._hf.to_str()

    def save(self, path: Path) -> None:
        atomic_write_text(Path(path), self.to_str())

    # ---- vocabulary

    @property
    def vocab_size(self) -> int:
        return self._hf.get_vocab_size(with_added_tokens=True)

    pad_id = PAD_ID
    unk_id = UNK_ID
    eos_id = EOS_ID

    def id_to_token(self, i: int) -> str:
        token = self._hf.id_to_token(i)
        if token is None:
            raise TokenizerError(f"token id {i} is outside the vocabulary (size {self.vocab_size})")
        return token

    def token_to_id(self, token: str) -> int | None:
        return self._hf.token_to_id(token)

    def unknown_characters(self, text: str) -> set[str]:
        """Characters (char level) or words (word level) the vocabulary lacks; BPE lacks none."""
        if self.level == "char":
            table = self._table()
            codes = _code_points(text)
            return {chr(c) for c in np.unique(codes[table[codes] == 0])}
        if self.level == "word":
            vocab = self._hf.get_vocab()
            return {word for word, _ in self._words(text) if word not in vocab}
        return set()

    def vocabulary(self) -> dict[str, int]:
        return self._hf.get_vocab()

    def words(self, text: str) -> Iterator[str]:
        """Word level: the words of `text` as encoding sees them, a block of lines at a time."""
        for start, end in line_blocks(text, 1 << 20):
            yield from (word for word, _ in self._words(text[start:end]))

    def with_tokens(self, tokens: Sequence[str]) -> TextTokenizer:
        """A char or word tokenizer whose vocabulary also holds `tokens`, with the next ids:
        every id it had stays as it was (fine-tuning grows the model's rows to match)."""
        if self.level not in ("char", "word"):
            raise TokenizerError(f"a {self.level} vocabulary does not grow")
        data = json.loads(self.to_str())
        vocab = data["model"]["vocab"]
        for token in tokens:
            vocab.setdefault(token, len(vocab))
        grown = TextTokenizer(Tokenizer.from_str(json.dumps(data)), self.level)
        if grown.vocab_size != len(vocab):
            raise TokenizerError("the vocabulary did not grow as asked")
        return grown

    # ---- encoding and decoding

    def encode(self, text: str) -> list[int]:
        return self._hf.encode(_check_encodable(text), add_special_tokens=False).ids

    def encode_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Ids as `encode` gives them, and for each the (start, end) character span of `text`
        it stands for. Byte tokens that hold part of one character all get that character's
        span; a byte-level BPE token's span includes the space it carries before a word."""
        encoding = self._hf.encode(_check_encodable(text), add_special_tokens=False)
        return encoding.ids, [(int(start), int(end)) for start, end in encoding.offsets]

    def encode_array(self, text: str) -> np.ndarray:
        """Ids as a compact array (uint16 when the vocabulary allows): the fast path for corpora."""
        dtype = np.uint16 if self.vocab_size <= 1 << 16 else np.uint32
        if self.level == "char":
            return self._encode_chars(text, dtype)
        blocks = split_blocks(_check_encodable(text), _BLOCK_CHARS, bpe=self.level == "bpe")
        # A block without a line break to cut at (a one-line corpus) is cut at spaces instead:
        # encoded whole, 20 MB of one line peaked at 2.2 GB.
        blocks = [piece for block in blocks for piece in text_pieces(block, _BLOCK_CHARS)]
        # encode_batch_fast (tokenizers >= 0.20) skips offsets: 2-3x faster, same ids.
        encode_batch = getattr(self._hf, "encode_batch_fast", self._hf.encode_batch)
        parts: list[np.ndarray] = []
        # Batches of 64 blocks (16 MB): the encodings of a whole big corpus at once would hold
        # every token's string; a batch's ids are kept and the rest let go.
        for start in range(0, len(blocks), 64):
            encodings = encode_batch(blocks[start : start + 64], add_special_tokens=False)
            parts.extend(np.asarray(e.ids, dtype=dtype) for e in encodings)
        return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)

    def decode(self, ids: Sequence[int]) -> str:
        ids = [int(i) for i in ids]
        if self.level == "word":
            return self._decode_words(ids)
        out: list[str] = []
        run: list[int] = []  # ids decoded together, so byte tokens can fuse into characters
        for i in ids:
            if i >= len(SPECIAL_TOKENS):
                run.append(i)
                continue
            if i == UNK_ID:
                out.append(self._hf.decode(run, skip_special_tokens=False) + "\ufffd")
                run = []
        out.append(self._hf.decode(run, skip_special_tokens=False))
        return "".join(out)

    # ---- internals

    def _decode_words(self, ids: list[int]) -> str:
        pieces: list[str] = []
        for i in ids:
            if i == PAD_ID:
                continue
            if i == EOS_ID:
                pieces.append("\n")
                continue
            if pieces and pieces[-1] != "\n":
                pieces.append(" ")
            pieces.append(self.id_to_token(i))
        return "".join(pieces)

    def _words(self, text: str) -> list[tuple[str, Any]]:
        normalized = self._hf.normalizer.normalize_str(text) if self._hf.normalizer else text
        return self._hf.pre_tokenizer.pre_tokenize_str(normalized)

    def _table(self) -> np.ndarray:
        if self._char_table is None:
            dtype = np.uint16 if self.vocab_size <= 1 << 16 else np.uint32
            table = np.zeros(_UNICODE_SIZE, dtype=dtype)  # 0 (<pad>) never encodes a character
            for token, token_id in self._hf.get_vocab().items():
                if len(token) == 1:
                    table[ord(token)] = token_id
            self._char_table = table
        return self._char_table

    def _encode_chars(self, text: str, dtype: type[np.unsignedinteger]) -> np.ndarray:
        codes = _code_points(text)
        table = self._table()[: 256 if codes.dtype == np.uint8 else None]
        ids: np.ndarray = np.empty(len(codes), dtype=dtype)
        # Blocks of 64K keep numpy's intp copy of the indices in cache: 5x faster than one take.
        for start in range(0, len(codes), 1 << 16):
            np.take(table, codes[start : start + (1 << 16)], out=ids[start : start + (1 << 16)])
        unknown = np.flatnonzero(ids == 0)
        if len(unknown) == 0:
            return ids
        # Unseen characters become their UTF-8 bytes, as HF's byte fallback does: the last byte
        # takes the character's slot and the leading bytes are inserted before it.
        unknown_codes = codes[unknown].astype(np.int64)
        nbytes = 1 + (unknown_codes >= 0x80) + (unknown_codes >= 0x800) + (unknown_codes >= 0x10000)
        ids[unknown] = _BYTE_OFFSET + _utf8_byte(unknown_codes, nbytes, nbytes - 1)
        owner = np.repeat(np.arange(len(unknown)), nbytes - 1)  # which character each leading byte is of
        first = np.cumsum(nbytes - 1) - (nbytes - 1)
        k = np.arange(len(owner)) - first[owner]
        leading = _BYTE_OFFSET + _utf8_byte(unknown_codes[owner], nbytes[owner], k)
        return np.insert(ids, unknown[owner], leading.astype(dtype))


def _utf8_byte(codes: np.ndarray, nbytes: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Byte k of the UTF-8 encoding of each code point, which is nbytes long."""
    lead = np.select(
        [nbytes == 1, nbytes == 2, nbytes == 3],
        [codes, 0xC0 | (codes >> 6), 0xE0 | (codes >> 12)],
        0xF0 | (codes >> 18),
    )
    continuation = 0x80 | ((codes >> (6 * (nbytes - 1 - k))) & 0x3F)
    return np.where(k == 0, lead, continuation)


def _code_points(text: str) -> np.ndarray:
    try:  # Latin-1 text (the common case) is one byte a character, a copy in CPython
        return np.frombuffer(text.encode("latin-1"), dtype=np.uint8)
    except UnicodeEncodeError:
        pass
    try:
        return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    except UnicodeEncodeError as error:
        raise TokenizerError(f"text has an unpaired surrogate at character {error.start}") from None


def _check_encodable(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise TokenizerError(f"text has an unpaired surrogate at character {error.start}") from None
    return text


def _detect_level(data: Any) -> str:
    """The level of an lstmtext tokenizer.json, read from its pipeline."""
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise TokenizerError("tokenizer.json has no model")
    model = data["model"].get("type")
    pre = (data.get("pre_tokenizer") or {}).get("type")
    if model == "WordLevel":
        return "word"
    if model == "BPE" and pre == "ByteLevel":
        return "bpe"
    if model == "BPE" and pre == "Split" and data["model"].get("byte_fallback"):
        return "char"
    raise TokenizerError(f"tokenizer.json is not an lstmtext tokenizer (model {model}, pre-tokenizer {pre})")


def _train_char(texts: Iterable[str]) -> Tokenizer:
    seen = np.zeros(_UNICODE_SIZE, dtype=bool)
    for text in texts:
        for start in range(0, len(text), 1 << 22):
            seen[_code_points(text[start : start + (1 << 22)])] = True
    chars = [chr(c) for c in np.flatnonzero(seen)]
    vocab = {token: i for i, token in enumerate((*SPECIAL_TOKENS, *_BYTE_TOKENS, *chars))}
    hf = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK, byte_fallback=True))
    # Oniguruma's (?m) is "dot matches newline": every character, \n and \r included, is a piece.
    hf.pre_tokenizer = pre_tokenizers.Split(Regex("(?m)."), behavior="isolated")
    hf.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse()])
    return hf


def _train_bpe(texts: Iterable[str], config: TokenizerConfig) -> Tokenizer:
    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=config.vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    hf.train_from_iterator(texts, trainer=trainer)
    # The trainer registers the specials as added tokens, which would turn the literal text
    # "<unk>" into id 1; keep them in the vocabulary only, so every text round-trips.
    data = json.loads(hf.to_str())
    data["added_tokens"] = []
    return Tokenizer.from_str(json.dumps(data))


def _train_word(texts: Iterable[str], config: TokenizerConfig) -> Tokenizer:
    hf = Tokenizer(models.WordLevel({PAD: 0, UNK: 1, EOS: 2}, unk_token=UNK))
    steps: list[normalizers.Normalizer] = [normalizers.Lowercase()] if config.lowercase else []
    steps.append(normalizers.Replace(Regex(r"\r\n|\r|\n"), f" {EOS} "))
    hf.normalizer = normalizers.Sequence(steps)
    hf.pre_tokenizer = pre_tokenizers.WhitespaceSplit()

    # Counted with the tokenizer's own normaliser and pre-tokenizer, so training and encoding
    # agree on what a word is.
    counts: collections.Counter[str] = collections.Counter()
    for text in texts:
        for start, end in line_blocks(text, 1 << 20):
            normalized = hf.normalizer.normalize_str(text[start:end])
            counts.update(word for word, _ in hf.pre_tokenizer.pre_tokenize_str(normalized))
    for token in SPECIAL_TOKENS:
        counts.pop(token, None)
    # Most frequent first, ties alphabetical, so the same corpus always gives the same ids.
    words = sorted((w for w, n in counts.items() if n >= config.min_frequency), key=lambda w: (-counts[w], w))
    if config.max_vocab is not None:
        words = words[: config.max_vocab - len(SPECIAL_TOKENS)]
    if not words:
        raise TokenizerError("no word occurs often enough to enter the vocabulary")
    vocab = {token: i for i, token in enumerate((*SPECIAL_TOKENS, *words))}
    hf.model = models.WordLevel(vocab, unk_token=UNK)
    return hf


def encode_long(tokenizer: TextTokenizer, text: str) -> np.ndarray:
    """Ids of a text of any length, encoded piece by piece (text_pieces), so the encoder never
    holds the offsets and strings of millions of tokens at once; the same ids as encode()."""
    parts = [tokenizer.encode_array(piece) for piece in text_pieces(text)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint16)
