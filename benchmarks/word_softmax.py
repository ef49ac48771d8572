"""The two-level softmax (`--softmax-cutoff`) against the full softmax: a word model, timed interleaved.

Both sides are `Trainer.fit()` in segments (benchmarks.training's RealLoop way) on the same
word-level ids, with the Penn Treebank shape that BENCHMARKS.md trains: 2 x 650, embedding
650 tied to the head, 10,000 words, batch 32 x 35 tokens. Penn Treebank's training text
when it is on disk, else Zipf-distributed synthetic words over a 10,000-word vocabulary.

Both Trainers start from the same core weights (the two-level one adds one cluster unit)
and see the same batches; after the timed rounds their validation losses are read as the
quality check (the two-level one's is its exact cross-entropy, not an approximation).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks import Interleaved, result
from benchmarks.training import SegmentedTrainer, Variant, segment_run_config
from lstmtext.config import TokenizerConfig
from lstmtext.data.corpus import TokenStream, split_ids
from lstmtext.data.tokenizer import TextTokenizer
from lstmtext.device import cpu_has_fast_bf16
from lstmtext.lm.task import evaluate_stream, language_model_trainer

BATCH_SIZE, SEQ_LEN, SIZE, VOCAB, CUTOFF = 32, 35, 650, 10_000, 1000
TOKENS_PER_STEP = BATCH_SIZE * SEQ_LEN


def word_text() -> str:
    try:
        from lstmtext.corpora import resolve

        return resolve("ptb", allow_download=False).path("train").read_text(encoding="utf-8")
    except Exception:  # noqa: BLE001 - any failure means: use synthetic words
        rng = np.random.default_rng(0)
        ranks = rng.zipf(1.1, size=1_000_000) % (VOCAB - 1)
        words = np.char.add("w", ranks.astype(str))
        return "\n".join(" ".join(line) for line in np.array_split(words, 40_000))


class WordLoop(SegmentedTrainer):
    def __init__(
        self, tokenizer: TextTokenizer, ids: np.ndarray, cutoff: int, precision: str, out: Path
    ) -> None:
        torch.manual_seed(0)
        shape = dict(
            embedding_dim=SIZE,
            hidden_size=SIZE,
            num_layers=2,
            dropout=0.4,
            tie_weights=True,
            softmax_cutoff=cutoff,
        )
        config = segment_run_config(
            tokenizer, shape, batch_size=BATCH_SIZE, seq_len=SEQ_LEN, precision=precision, random_state=0
        )
        super().__init__(language_model_trainer(config, tokenizer, ids, None, out))


def run(quick: bool) -> list[dict[str, Any]]:
    rounds, steps = (2, 3) if quick else (5, 6)
    text = word_text()
    tokenizer = TextTokenizer.train([text], TokenizerConfig(level="word", max_vocab=VOCAB))
    train_ids, val_ids = split_ids(tokenizer.encode_array(text), 0.05)
    precision = "bf16" if cpu_has_fast_bf16() else "fp32"
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="lstmtext-bench-") as tmp:
        loops = {
            "full": WordLoop(tokenizer, train_ids, 0, precision, Path(tmp) / "full"),
            "two-level": WordLoop(tokenizer, train_ids, CUTOFF, precision, Path(tmp) / "two"),
        }
        timing = Interleaved({name: Variant(loop.segment) for name, loop in loops.items()})
        timing.run(rounds, steps)
        rows.append(
            result(
                f"word_softmax.two_level_{CUTOFF}_{precision}",
                timing.per_second("two-level", TOKENS_PER_STEP),
                "tokens/s",
                f"full softmax over {tokenizer.vocab_size} words, {precision}",
                timing.per_second("full", TOKENS_PER_STEP),
                timing.ratio("two-level", "full"),
            )
        )
        trained = loops["full"].trainer.step
        assert loops["two-level"].trainer.step == trained
        val_stream = TokenStream(val_ids, BATCH_SIZE, SEQ_LEN)
        losses = {
            name: evaluate_stream(
                loop.trainer.model, val_stream, torch.device("cpu"), precision=precision, max_batches=8
            )[0]
            for name, loop in loops.items()
        }
        rows.append(
            result(
                f"word_softmax.two_level_val_loss_after_{trained}_steps",
                losses["two-level"],
                "nats/token",
                "full softmax val loss",
                losses["full"],
            )
        )
    return rows
