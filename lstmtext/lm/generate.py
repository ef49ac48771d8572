"""Text generation: feed the prime text once, then sample token by token with the state carried.

    checkpoint = load_checkpoint("runs/shakespeare", task="lm")
    rng = make_generator(1)
    for piece in stream(checkpoint.model, checkpoint.tokenizer, "ROMEO:", GenerateConfig(length=200), rng):
        print(piece, end="", flush=True)

The prefix is never re-run: the prime text goes through the fused core once
(InferenceStep.prime), then each sampled token takes one InferenceStep.step. Text comes out
as soon as it exists, decoded incrementally so that the pieces concatenate to exactly the
decoded continuation (a character split over byte-fallback tokens waits for its last byte).

An empty seed starts from a newline (char and BPE level) or from <eos> (word level, where
<eos> is the line break), as text starts after a line end in the training corpus.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from lstmtext.config import STEP_PRECISIONS, ModelConfig
from lstmtext.core.inference import InferenceStep, StepState
from lstmtext.core.model import LanguageModel
from lstmtext.data.tokenizer import TextTokenizer
from lstmtext.errors import ConfigError
from lstmtext.lm.sample import check_sampling, sample_next


@dataclass(frozen=True)
class GenerateConfig:
    length: int = 500  # tokens sampled per sample (fewer when the stop string comes first)
    temperature: float = 1.0  # 0 = greedy
    top_k: int | None = None
    top_p: float | None = None
    greedy: bool = False
    num_samples: int = 1  # rows sampled together in one batch
    stop: str | None = None  # end a sample where this text appears (it is not output)
    beam: int = 1  # > 1: beam search of this width for the most likely continuation
    precision: str = "fp32"  # of the inference step's matrices: fp32 | bf16

    def __post_init__(self) -> None:
        if self.length < 0:
            raise ConfigError(f"length must be >= 0, not {self.length}")
        check_sampling(self.temperature, self.top_k, self.top_p)
        if self.num_samples < 1:
            raise ConfigError(f"num samples must be at least 1, not {self.num_samples}")
        if self.beam < 1:
            raise ConfigError(f"beam width must be at least 1, not {self.beam}")
        if self.beam > 1 and self.num_samples > 1:
            raise ConfigError("beam search gives one continuation: use --beam or --num-samples, not both")
        if self.stop == "":
            raise ConfigError("the stop string must not be empty")
        if self.precision not in STEP_PRECISIONS:
            raise ConfigError(
                f"precision must be one of {', '.join(STEP_PRECISIONS)}, not {self.precision!r}"
            )


class IncrementalDecoder:
    """Token ids in, text pieces out, so that the pieces join to decode(context + ids) minus decode(context).

    `context` (the prompt's last token) gives word level its joining space and keeps a
    piece from being decoded out of context. A piece is held back while the decoded text
    ends in U+FFFD, the mark of a character whose bytes have not all arrived.
    """

    def __init__(self, tokenizer: TextTokenizer, context: Sequence[int] = ()) -> None:
        self.tokenizer = tokenizer
        self.ids = [int(i) for i in context]
        self.prefix = 0  # ids[prefix:read] decode to text already emitted (the context, at first)
        self.read = len(self.ids)

    def push(self, token_id: int) -> str:
        self.ids.append(token_id)
        prefix_text = self.tokenizer.decode(self.ids[self.prefix : self.read])
        text = self.tokenizer.decode(self.ids[self.prefix :])
        if len(text) <= len(prefix_text) or text.endswith("\ufffd"):
            return ""
        self.prefix, self.read = self.read, len(self.ids)
        return text[len(prefix_text) :]

    def flush(self) -> str:
        """Whatever is held back (bytes that never completed a character, shown as U+FFFD)."""
        prefix_text = self.tokenizer.decode(self.ids[self.prefix : self.read])
        text = self.tokenizer.decode(self.ids[self.prefix :])
        self.prefix, self.read = self.read, len(self.ids)
        return text[len(prefix_text) :]


class StopFilter:
    """Passes text through until the stop string appears; holds back what might begin it."""

    def __init__(self, stop: str | None) -> None:
        self.stop = stop
        self.pending = ""
        self.stopped = False

    def push(self, piece: str) -> str:
        if self.stopped:
            return ""
        if self.stop is None:
            return piece
        text = self.pending + piece
        found = text.find(self.stop)
        if found >= 0:
            self.stopped = True
            self.pending = ""
            return text[:found]
        keep = _partial_match(text, self.stop)
        self.pending = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def flush(self) -> str:
        text, self.pending = ("" if self.stopped else self.pending), ""
        return text


def _partial_match(text: str, stop: str) -> int:
    """Length of the longest end of `text` that is a proper beginning of `stop`."""
    for size in range(min(len(stop) - 1, len(text)), 0, -1):
        if text.endswith(stop[:size]):
            return size
    return 0


def _token_text(tokenizer: TextTokenizer, context: int, token_id: int) -> str:
    """The text `token_id` adds after the token `context` (word level: with its space)."""
    return tokenizer.decode([context, token_id])[len(tokenizer.decode([context])) :]


def start_ids(tokenizer: TextTokenizer, seed_text: str) -> list[int]:
    """The prime text's ids; for an empty seed, a line break (see the module docstring)."""
    if seed_text:
        ids = tokenizer.encode(seed_text)
        if ids:
            return ids
    if tokenizer.level == "word":
        return [tokenizer.eos_id]
    return tokenizer.encode("\n")


def never_produced(tokenizer: TextTokenizer) -> list[int]:
    """Token ids that encoding the training text never yields, so sampling must not either.

    <pad> at every level; at char and BPE level also <unk> and <eos>; at char level also the
    256 byte-fallback tokens, since every character of the training text has its own token
    (they still encode unseen characters of a seed, which the model then reads).
    """
    if tokenizer.level == "word":
        return [tokenizer.pad_id]
    ids = [tokenizer.pad_id, tokenizer.unk_id, tokenizer.eos_id]
    if tokenizer.level == "char":
        byte_ids = (tokenizer.token_to_id(f"<0x{b:02X}>") for b in range(256))
        ids += [i for i in byte_ids if i is not None]
    return ids


class Session:
    """A model, its tokenizer and the carried state of `rows` samples: feed text, sample more.

    Interactive use feeds each prompt with `feed` and reads the continuation from `sample`
    (or picks it token by token with `top_tokens` and `choose`); the state runs on from one
    to the next, never re-running what came before.
    """

    def __init__(
        self,
        model: LanguageModel,
        tokenizer: TextTokenizer,
        config: GenerateConfig,
        generator: torch.Generator | None,
        *,
        step: InferenceStep | None = None,
    ) -> None:
        if tokenizer.vocab_size != model.config.vocab_size:
            raise ConfigError(
                f"tokenizer has {tokenizer.vocab_size} tokens, the model {model.config.vocab_size}"
            )
        self.tokenizer = tokenizer
        self.config = config
        self.generator = generator
        self.step = step or InferenceStep(model.eval(), precision=config.precision)
        self.step.suppress(never_produced(tokenizer))
        self.rows = config.beam if config.beam > 1 else config.num_samples
        self.state: StepState = self.step.new_state(self.rows)
        self.logits: Tensor | None = None  # (rows, V): the next token's, after all that was fed
        self.last_ids: list[int] = []  # per row, the last token fed: the decoders' context

    def feed(self, text: str) -> None:
        """Run text (or, when empty and nothing was fed yet, a line break) through the core."""
        if not text and self.logits is not None:
            return
        ids = start_ids(self.tokenizer, text) if self.logits is None else self.tokenizer.encode(text)
        batch = torch.tensor(ids, dtype=torch.long, device=self.step.device)[None, :].expand(self.rows, -1)
        self.logits = self.step.prime(batch, self.state)
        self.last_ids = [ids[-1]] * self.rows

    def sample(self) -> Iterator[tuple[int, str]]:
        """(row, text piece) as each piece exists, up to `length` tokens a row or the stop string.

        Every sampled token is fed back, so the state is ready for more text afterwards.
        """
        if self.logits is None:
            self.feed("")
        assert self.logits is not None
        config = self.config
        decoders = [IncrementalDecoder(self.tokenizer, [last]) for last in self.last_ids]
        stops = [StopFilter(config.stop) for _ in range(self.rows)]
        logits = self.logits
        for _ in range(config.length):
            ids = sample_next(
                logits,
                generator=self.generator,
                temperature=config.temperature,
                top_k=config.top_k,
                top_p=config.top_p,
                greedy=config.greedy,
            )  # (rows,)
            logits = self.step.step(ids, self.state)
            # The step reuses its logits buffer; ours must survive a later feed().
            self.logits = logits
            values = ids.tolist()
            self.last_ids = values
            for row, token_id in enumerate(values):
                piece = stops[row].push(decoders[row].push(token_id))
                if piece:
                    yield row, piece
            if all(stop.stopped for stop in stops):
                break
        for row in range(self.rows):
            piece = stops[row].push(decoders[row].flush())
            piece += stops[row].flush()
            if piece:
                yield row, piece
        self.logits = self.logits.clone()

    def top_tokens(self, k: int) -> list[tuple[int, float, str]]:
        """The k most likely next tokens of row 0, most likely first: (token id, probability, text).

        Tokens sampling never produces (see never_produced) are left out, so fewer than k
        may come back. With choose(), a user can pick the continuation token by token.
        """
        if k < 1:
            raise ConfigError(f"the number of top tokens must be at least 1, not {k}")
        if self.logits is None:
            self.feed("")
        assert self.logits is not None
        probs = self.logits[0].float().softmax(dim=-1)  # (V,)
        values, ids = probs.topk(min(k, probs.shape[0]))
        return [
            (token_id, p, _token_text(self.tokenizer, self.last_ids[0], token_id))
            for p, token_id in zip(values.tolist(), ids.tolist(), strict=True)
            if p > 0.0
        ]

    def choose(self, token_id: int) -> str:
        """Append this token to every row as if it had been sampled; the text it adds."""
        if not 0 <= token_id < self.step.vocab_size:
            raise ConfigError(f"token id {token_id} is outside the vocabulary of {self.step.vocab_size}")
        if self.logits is None:
            self.feed("")
        text = _token_text(self.tokenizer, self.last_ids[0], token_id)
        ids = torch.full((self.rows,), token_id, dtype=torch.long, device=self.step.device)
        self.logits = self.step.step(ids, self.state).clone()  # the step's buffer is reused
        self.last_ids = [token_id] * self.rows
        return text

    def beam_search(self) -> str:
        """The most likely continuation of `length` tokens found by a beam of `config.beam` rows."""
        if self.logits is None:
            self.feed("")
        assert self.logits is not None
        width, vocab = self.rows, self.step.vocab_size
        context = self.last_ids[:1]  # the prompt's last token, for the decoder
        # All rows start identical; only row 0 may extend at first, or the beam holds copies.
        scores = torch.full((width,), float("-inf"), device=self.step.device)
        scores[0] = 0.0
        histories: list[list[int]] = [[] for _ in range(width)]
        logits = self.logits
        for _ in range(self.config.length):
            totals = scores[:, None] + logits.float().log_softmax(dim=-1)  # (beam, V)
            scores, flat = totals.flatten().topk(width)
            rows, ids = flat // vocab, flat % vocab
            self.state.reorder(rows)
            histories = [histories[r] + [t] for r, t in zip(rows.tolist(), ids.tolist(), strict=True)]
            logits = self.step.step(ids, self.state)
        best = int(scores.argmax())
        self.state.reorder(torch.full((width,), best, dtype=torch.long, device=self.step.device))
        self.logits = logits[best : best + 1].expand(width, -1).clone()
        self.last_ids = [histories[best][-1] if histories[best] else context[0]] * width
        decoder = IncrementalDecoder(self.tokenizer, context)
        stop = StopFilter(self.config.stop)
        text = "".join(stop.push(decoder.push(t)) for t in histories[best])
        return text + stop.push(decoder.flush()) + stop.flush()


def stream(
    model: LanguageModel,
    tokenizer: TextTokenizer,
    seed_text: str,
    config: GenerateConfig,
    generator: torch.Generator | None,
) -> Iterator[str]:
    """The continuation of `seed_text`, piece by piece as it is sampled (one sample)."""
    if config.num_samples != 1 or config.beam != 1:
        raise ConfigError("stream() makes one sample by sampling; use generate() for several or beam search")
    session = Session(model, tokenizer, config, generator)
    session.feed(seed_text)
    for _, piece in session.sample():
        yield piece


# Samples are made in batches of at most this many rows, and of at most SAMPLE_BATCH_BYTES of
# logits and state: --num-samples 100000000 in one batch asked for 12.8 GB, and its giant
# tensor ops kept Ctrl-C waiting for seconds. Short steps on a bounded batch see it at once.
MAX_BATCH_ROWS = 1024
SAMPLE_BATCH_BYTES = 256 << 20


def batch_rows(config: ModelConfig, num_samples: int) -> int:
    """Rows sampled together: all `num_samples`, up to the bounds above."""
    # float32 per row: logits and the sampler's copies of them (about 6 x V), h and c of
    # every layer with the step's buffers (about 4 x L x H), the input slot (E).
    per_row = 4 * (6 * config.vocab_size + 4 * config.num_layers * config.hidden_size + config.embedding_dim)
    return max(1, min(num_samples, MAX_BATCH_ROWS, SAMPLE_BATCH_BYTES // per_row))


def sample_in_batches(
    model: LanguageModel,
    tokenizer: TextTokenizer,
    seed_text: str,
    config: GenerateConfig,
    generator: torch.Generator | None,
    *,
    step: InferenceStep | None = None,
) -> Iterator[list[str]]:
    """The `config.num_samples` continuations of `seed_text`, one list per batch of
    batch_rows() rows, in order; the rows of a batch finish together."""
    rows = batch_rows(model.config, config.num_samples)
    for first in range(0, config.num_samples, rows):
        batch = replace(config, num_samples=min(rows, config.num_samples - first))
        session = Session(model, tokenizer, batch, generator, step=step)
        step = session.step  # the arranged weights serve every batch
        session.feed(seed_text)
        texts = [""] * session.rows
        for row, piece in session.sample():
            texts[row] += piece
        yield texts


def generate(
    model: LanguageModel,
    tokenizer: TextTokenizer,
    seed_text: str,
    config: GenerateConfig,
    generator: torch.Generator | None,
) -> list[str]:
    """The continuations of `seed_text`: `num_samples` of them, or the beam's best one."""
    if config.beam > 1:
        session = Session(model, tokenizer, config, generator)
        session.feed(seed_text)
        return [session.beam_search()]
    return [
        text for batch in sample_in_batches(model, tokenizer, seed_text, config, generator) for text in batch
    ]
