"""lstmtext's training loop against a bare PyTorch loop, fp32 and bf16, timed interleaved.

The lstmtext side is `Trainer.fit()` itself, run in segments of a few steps: batches cut from
a TokenStream, the schedule, `_train_step` (autocast, cross-entropy, zero_grad, backward,
GradScaler calls, clipping, Adam, state detach, `.item()`), the NaN guard, log events
and the end-of-segment checkpoint (not timed: only whole loop iterations between two step
ends are, see `seconds_per_step`).

The baseline is what pytorch/examples' word_language_model does: nn.Embedding -> nn.LSTM
-> nn.Linear -> cross-entropy -> Adam on a pre-batched LongTensor, state detached between
batches, `.item()` of the loss. The model shape is the same (2 x 512, embedding 128, the
same inter-layer dropout 0.2); the baseline has no output dropout and no clipping, so those
count against lstmtext.

The fp32 and bf16 Trainers start from the same weights, see the same batches and draw the
same dropout masks (each variant keeps its own RNG state), so after the timing rounds their
validation losses can be compared: that is the bf16 loss check.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmarks import Interleaved, result, seconds_per_step, synthetic_text
from lstmtext.config import ModelConfig, RunConfig, TokenizerConfig, TrainConfig
from lstmtext.data.corpus import TokenStream, split_ids
from lstmtext.data.tokenizer import TextTokenizer
from lstmtext.lm.task import evaluate_stream, language_model_trainer
from lstmtext.training.loop import Trainer

BATCH_SIZE, SEQ_LEN = 64, 100
EMBEDDING, HIDDEN, LAYERS, DROPOUT = 128, 512, 2, 0.2
LR, CLIP = 2e-3, 5.0
TOKENS_PER_STEP = BATCH_SIZE * SEQ_LEN


def corpus_ids() -> tuple[TextTokenizer, np.ndarray]:
    """Char-level ids of Tiny Shakespeare when it is on disk, else of synthetic text (~1.1 MB)."""
    text = None
    try:
        from lstmtext.corpora import resolve

        text = resolve("tinyshakespeare", allow_download=False).path("text").read_text(encoding="utf-8")
    except Exception:  # noqa: BLE001 - any failure means: use the synthetic text
        text = None
    if text is None:
        text = synthetic_text(1_100_000)
    tokenizer = TextTokenizer.train([text], TokenizerConfig(level="char"))
    return tokenizer, tokenizer.encode_array(text)


class Variant:
    """A timed variant with its own RNG state, so interleaving does not change its dropout masks."""

    def __init__(self, step_segment: Callable[[int], list[float]]) -> None:
        self.step_segment = step_segment
        self.rng = torch.get_rng_state()

    def __call__(self, steps: int) -> float:
        torch.set_rng_state(self.rng)
        stamps = self.step_segment(steps)
        self.rng = torch.get_rng_state()
        return seconds_per_step(stamps)


class BareLoop:
    """nn.Embedding -> nn.LSTM -> nn.Linear -> cross-entropy -> Adam, nothing else."""

    def __init__(self, vocab_size: int, ids: np.ndarray, precision: str, dropout: float = DROPOUT) -> None:
        torch.manual_seed(0)
        self.embedding = nn.Embedding(vocab_size, EMBEDDING)
        self.lstm = nn.LSTM(EMBEDDING, HIDDEN, num_layers=LAYERS, dropout=dropout, batch_first=True)
        self.head = nn.Linear(HIDDEN, vocab_size)
        params = [*self.embedding.parameters(), *self.lstm.parameters(), *self.head.parameters()]
        self.optimizer = torch.optim.Adam(params, lr=LR)
        self.bf16 = precision == "bf16"
        row_len = len(ids) // BATCH_SIZE
        self.data = torch.from_numpy(ids[: BATCH_SIZE * row_len].astype(np.int64)).view(BATCH_SIZE, row_len)
        self.position = 0
        self.state = self._zeros()

    def _zeros(self) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros(LAYERS, BATCH_SIZE, HIDDEN), torch.zeros(LAYERS, BATCH_SIZE, HIDDEN)

    def segment(self, steps: int) -> list[float]:
        stamps = []
        for _ in range(steps):
            if self.position + SEQ_LEN + 1 > self.data.shape[1]:
                self.position, self.state = 0, self._zeros()
            x = self.data[:, self.position : self.position + SEQ_LEN]  # (B, T)
            y = self.data[:, self.position + 1 : self.position + SEQ_LEN + 1]
            self.position += SEQ_LEN
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                outputs, state = self.lstm(self.embedding(x), self.state)
                logits = self.head(outputs)  # (B, T, V)
                loss = nn.functional.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1)
                )
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            self.state = (state[0].detach(), state[1].detach())
            loss.item()
            stamps.append(time.perf_counter())
        return stamps


def segment_run_config(tokenizer: TextTokenizer, model: dict[str, Any], **options: Any) -> RunConfig:
    """The RunConfig of a language model over `tokenizer`, shaped by `model` (ModelConfig's
    fields), for a Trainer timed in segments on the CPU; `options` on top of its TrainConfig.

    eval_every is the CLI's default, so log events come every 50 steps as they do there.
    Each segment ends in an evaluation and a checkpoint, as a run's end does (not timed):
    one validation batch is enough, and a constant rate keeps the plateau schedule from
    halving one variant's rate and not the other's.
    """
    defaults: dict[str, Any] = {
        "eval_every": 200,
        "eval_batches": 1,
        "lr_schedule": "constant",
        "patience": None,
        "keep_last": 0,
        "device": "cpu",
    }
    return RunConfig(
        tokenizer=TokenizerConfig(level=tokenizer.level),
        model=ModelConfig(vocab_size=tokenizer.vocab_size, **model),
        train=TrainConfig(**{**defaults, **options}),
    )


class SegmentedTrainer:
    """A Trainer whose `fit()` runs `steps` more steps per segment, each step's end timestamped."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.stamps: list[float] = []
        original = trainer._train_step

        def timestamped(batch: Any, lr: float) -> float:
            loss = original(batch, lr)
            self.stamps.append(time.perf_counter())
            return loss

        trainer._train_step = timestamped  # type: ignore[method-assign]

    def segment(self, steps: int) -> list[float]:
        self.stamps = []
        self.trainer.total_steps = self.trainer.step + steps
        self.trainer.fit()
        return self.stamps


class RealLoop(SegmentedTrainer):
    """`Trainer.fit()` in segments; `_train_step` is wrapped only to timestamp each step's end."""

    def __init__(
        self, tokenizer: TextTokenizer, ids: np.ndarray, precision: str, out_dir: Path, **model_options: Any
    ) -> None:
        shape = dict(embedding_dim=EMBEDDING, hidden_size=HIDDEN, num_layers=LAYERS, dropout=DROPOUT)
        train = dict(batch_size=BATCH_SIZE, seq_len=SEQ_LEN, lr=LR, clip=CLIP, precision=precision)
        config = segment_run_config(tokenizer, shape | model_options, **train)
        self.events: list[Any] = []
        super().__init__(
            language_model_trainer(config, tokenizer, ids, None, out_dir, on_event=self.events.append)
        )


def bf16_lstm_runs() -> bool:
    """Whether nn.LSTM runs under CPU bf16 autocast here (oneDNN refuses on AVX2-only CPUs)."""
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            torch.nn.LSTM(8, 8, batch_first=True)(torch.zeros(1, 2, 8))
    except RuntimeError:
        return False
    return True


def run(quick: bool) -> list[dict[str, Any]]:
    rounds, steps = (2, 3) if quick else (6, 6)
    tokenizer, ids = corpus_ids()
    train_ids, val_ids = split_ids(ids, 0.1)
    rows: list[dict[str, Any]] = []
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="lstmtext-bench-") as tmp:
        # oneDNN has no bf16 LSTM on CPUs without bf16 instructions (AVX2-only Zen 3 raises).
        precisions = ("fp32", "bf16") if bf16_lstm_runs() else ("fp32",)
        real = {p: RealLoop(tokenizer, train_ids, p, Path(tmp) / p) for p in precisions}
        bare = {p: BareLoop(tokenizer.vocab_size, train_ids, p) for p in precisions}
        variants = {}
        for p in precisions:
            variants[f"lstmtext {p}"] = Variant(real[p].segment)
            variants[f"bare {p}"] = Variant(bare[p].segment)
        # AWD-LSTM's regularisers run the core layer by layer (lstmtext.core.regularisation):
        # what that costs against the one multi-layer call, in the fastest precision.
        fastest = precisions[-1]
        awd = RealLoop(tokenizer, train_ids, fastest, Path(tmp) / "awd", locked_dropout=True, weight_drop=0.5)
        variants[f"lstmtext {fastest} awd"] = Variant(awd.segment)
        timing = Interleaved(variants)
        timing.run(rounds, steps)
        for precision in precisions:
            name, baseline = f"lstmtext {precision}", f"bare {precision}"
            rows.append(
                result(
                    f"training.{precision}",
                    timing.per_second(name, TOKENS_PER_STEP),
                    "tokens/s",
                    f"bare PyTorch {precision} loop",
                    timing.per_second(baseline, TOKENS_PER_STEP),
                    timing.ratio(name, baseline),
                )
            )
        rows.append(
            result(
                f"training.{fastest}_locked_dropout_weight_drop",
                timing.per_second(f"lstmtext {fastest} awd", TOKENS_PER_STEP),
                "tokens/s",
                f"lstmtext {fastest}, plain dropout",
                timing.per_second(f"lstmtext {fastest}", TOKENS_PER_STEP),
                timing.ratio(f"lstmtext {fastest} awd", f"lstmtext {fastest}"),
            )
        )
        if "bf16" in precisions:
            for loop, row in (("lstmtext", "training.bf16_speedup"), ("bare", "training.bare_bf16_speedup")):
                rows.append(
                    result(
                        row,
                        timing.per_second(f"{loop} bf16", TOKENS_PER_STEP),
                        "tokens/s",
                        f"{loop} fp32",
                        timing.per_second(f"{loop} fp32", TOKENS_PER_STEP),
                        timing.ratio(f"{loop} bf16", f"{loop} fp32"),
                    )
                )
            # Both Trainers took the same steps on the same batches from the same weights.
            trained_steps = real["fp32"].trainer.step
            val_stream = TokenStream(val_ids, BATCH_SIZE, SEQ_LEN)
            losses = {}
            for precision, loop in real.items():
                loss, _ = evaluate_stream(
                    loop.trainer.model,
                    val_stream,
                    torch.device("cpu"),
                    precision=precision,
                    max_batches=4 if quick else 16,
                )
                losses[precision] = loss
            assert real["bf16"].trainer.step == trained_steps
            rows.append(
                result(
                    f"training.bf16_val_loss_after_{trained_steps}_steps",
                    losses["bf16"],
                    "nats/token",
                    "fp32 val loss",
                    losses["fp32"],
                )
            )
            if not math.isfinite(losses["bf16"]):
                raise RuntimeError("bf16 validation loss is not finite")

        # Threads: the fp32 Trainer again, torch's intra-op threads switched per segment.
        if threads >= 2:

            def with_threads(count: int) -> Callable[[int], float]:
                def segment(steps: int) -> float:
                    torch.set_num_threads(count)
                    try:
                        return seconds_per_step(real["fp32"].segment(steps))
                    finally:
                        torch.set_num_threads(threads)

                return segment

            thread_timing = Interleaved({"1": with_threads(1), str(threads): with_threads(threads)})
            thread_timing.run(rounds, max(3, steps // 2), warmup=0)
            rows.append(
                result(
                    f"training.threads_{threads}_vs_1",
                    thread_timing.per_second(str(threads), TOKENS_PER_STEP),
                    "tokens/s",
                    "1 thread",
                    thread_timing.per_second("1", TOKENS_PER_STEP),
                    thread_timing.ratio(str(threads), "1"),
                )
            )
    return rows
