"""The language-model task of the training loop: windows of a token stream with the LSTM state
carried from one window to the next (truncated BPTT), and validation perplexity.

trainer = language_model_trainer(run_config, tokenizer, train_ids, val_ids, "runs/lm")
result = trainer.fit()
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from lstmtext.config import RunConfig, TrainConfig
from lstmtext.core.model import LanguageModel, State
from lstmtext.core.regularisation import ActivationPenalty
from lstmtext.data.corpus import TokenStream, fit_batch_shape, release_pages
from lstmtext.data.tokenizer import TextTokenizer
from lstmtext.device import autocast_context, resolve_precision, select_device
from lstmtext.distributed import Distributed, local_batch_size, row_block
from lstmtext.errors import ConfigError, CorpusError
from lstmtext.events import TrainEvent
from lstmtext.lm.ensemble import mixture_nll
from lstmtext.training.loop import Trainer

# Batches between dropping the pages of a memory-mapped corpus from RSS: each batch maps about
# B * T * 2 bytes more (13 KB at 64 x 100), so RSS grows by at most ~13 MB between two drops.
RELEASE_PAGES_EVERY = 1000

# AWD-LSTM's variable BPTT (Merity et al. 2018, section 4.1): a window is T long with
# probability 0.95 and T / 2 otherwise, then its length is drawn from N(that, 5), at least 5.
FULL_WINDOW_PROBABILITY = 0.95
WINDOW_LENGTH_STDEV = 5.0
SHORTEST_WINDOW = 5

LMBatch = tuple[Tensor, Tensor]  # inputs, targets (B, T)


def token_counts(ids: np.ndarray, vocab_size: int, limit: int = 64 << 20) -> Tensor:
    """How often each id occurs in (the first `limit` tokens of) a stream, memory-mapped or not."""
    head = np.asarray(ids[:limit], dtype=np.int64)
    return torch.from_numpy(np.bincount(head, minlength=vocab_size)[:vocab_size])


def shard_stream(
    ids: np.ndarray, batch_size: int, seq_len: int, rank: int, world_size: int
) -> TokenStream | None:
    """Rank `rank`'s rows of TokenStream(ids, batch_size, seq_len), or None if it gets no row.

    The rows are split into contiguous blocks (see distributed.row_block), so rank r reads
    its own stretch of the corpus and all ranks together read the single-process batch.
    """
    if world_size == 1:
        return TokenStream(ids, batch_size, seq_len)
    row_len = len(ids) // batch_size
    rows = row_block(batch_size, rank, world_size)
    if not rows:
        return None
    return TokenStream(ids[rows.start * row_len : rows.stop * row_len], len(rows), seq_len)


def window_length(config: TrainConfig, step: int) -> int:
    """Tokens of step `step`'s window: seq_len, or AWD-LSTM's draw under vary_seq_len.

    Fixed windows would cut the stream at the same places every epoch, so the same tokens
    would always open a window with the least gradient history behind them. The draw is seeded
    by (random_state, step) alone: a resumed run and every rank of a distributed one agree.
    """
    if not config.vary_seq_len:
        return config.seq_len
    rng = np.random.default_rng((config.random_state, step))
    centre = config.seq_len if rng.random() < FULL_WINDOW_PROBABILITY else config.seq_len / 2
    return max(min(SHORTEST_WINDOW, config.seq_len), round(rng.normal(centre, WINDOW_LENGTH_STDEV)))


def mean_window_length(config: TrainConfig) -> float:
    if not config.vary_seq_len:
        return float(config.seq_len)
    return config.seq_len * (FULL_WINDOW_PROBABILITY + (1 - FULL_WINDOW_PROBABILITY) / 2)


def detach_state(state: State) -> State:
    # Truncated BPTT: keep the values, cut the graph, so backprop stops at the batch edge.
    return state[0].detach(), state[1].detach()


@torch.no_grad()
def evaluate_stream(
    model: LanguageModel | Sequence[LanguageModel],
    stream: TokenStream,
    device: torch.device,
    *,
    precision: str = "fp32",
    max_batches: int | None = None,
) -> tuple[float, int]:
    """Mean cross-entropy (nats per token) over a stream, state carried; returns (loss, tokens).

    Several models: the loss of their ensemble (lstmtext.lm.ensemble), each with its own state."""
    models = [model] if isinstance(model, LanguageModel) else list(model)
    was_training = [m.training for m in models]
    for m in models:
        m.eval()
    states = [m.core.initial_state(stream.batch_size, device) for m in models]
    total, count = 0.0, 0
    batches = len(stream) if max_batches is None else min(len(stream), max_batches)
    for index in range(batches):
        inputs, targets = (t.to(device, non_blocking=True) for t in stream.batch(index))
        nlls = []
        for k, m in enumerate(models):
            with autocast_context(precision, device):
                nll, states[k] = m(inputs, states[k], targets)
            nlls.append(nll)
        nll = nlls[0] if len(nlls) == 1 else mixture_nll(nlls)
        total += float(nll.sum())
        count += targets.numel()
    for m, training in zip(models, was_training, strict=True):
        m.train(training)
    if count == 0:
        raise CorpusError("validation text is too short to evaluate")
    return total / count, count


def fit_to_corpus(run_config: RunConfig, train_tokens: int, world_size: int) -> tuple[RunConfig, str]:
    """The run's batch shape shrunk to what a short corpus can fill, and the warning that says so."""
    config = run_config.train
    local_batch_size(config.batch_size, world_size)  # refuse a global batch that does not split evenly
    batch_size, seq_len, warning = fit_batch_shape(train_tokens, config.batch_size, config.seq_len)
    if warning and batch_size % world_size:
        batch_size -= batch_size % world_size
        if batch_size == 0:
            raise ConfigError(f"the corpus is too short to give each of {world_size} processes a batch row")
        warning += f" (rounded down to {batch_size}, a multiple of the {world_size} processes)"
    if not warning:
        return run_config, ""
    return replace(run_config, train=replace(config, batch_size=batch_size, seq_len=seq_len)), warning


class LanguageModelTask:
    """Batches, loss and validation of a language model, for the one training loop (lstmtext.training.loop).

    With several ranks each trains on its block of the batch rows; `config.batch_size` is the
    global batch. The loop position (window count and offset in each row this epoch) and the
    carried state are what a resume restores.
    """

    def __init__(
        self,
        model: LanguageModel,
        config: TrainConfig,
        train_ids: np.ndarray,
        val_ids: np.ndarray | None,
        device: torch.device,
        precision: str,
        distributed: Distributed,
    ) -> None:
        self.model = model
        self.config = config
        self.device = device
        self.precision = precision
        self.dist = distributed
        world = distributed.world_size
        self.local_batch = config.batch_size // world
        train_stream = shard_stream(train_ids, config.batch_size, config.seq_len, distributed.rank, world)
        assert train_stream is not None  # every rank has local_batch >= 1 rows
        self.train_stream = train_stream
        self.val_stream = None
        self.has_validation = val_ids is not None and len(val_ids) >= 2
        if val_ids is not None and self.has_validation:
            val_batch, val_seq_len, _ = fit_batch_shape(len(val_ids), config.batch_size, config.seq_len)
            # Validation rows may not split evenly (or at all); losses are summed over ranks.
            self.val_stream = shard_stream(val_ids, val_batch, val_seq_len, distributed.rank, world)
        self.steps_per_epoch = math.ceil(self.train_stream.inputs_per_row / mean_window_length(config))
        self.penalty = ActivationPenalty(config.activation_penalty, config.temporal_penalty)
        self.batch_index = 0  # windows taken this epoch
        self.position = 0  # where in each row this epoch's next window starts
        # h, c (L, B / world, H): this rank's rows of the carried state
        self.state: State = model.core.initial_state(self.local_batch, device)

    def next_batch(self, step: int) -> LMBatch:
        if self.position >= self.train_stream.inputs_per_row:
            self.batch_index, self.position = 0, 0
            self.state = self.model.core.initial_state(self.local_batch, self.device)
        if self.batch_index % RELEASE_PAGES_EVERY == 0:
            release_pages(self.train_stream.rows)  # a memory-mapped corpus: keep RSS flat
        inputs, targets = self.train_stream.window(self.position, window_length(self.config, step))
        pin = self.device.type == "cuda"
        if pin:
            inputs, targets = inputs.pin_memory(), targets.pin_memory()
        return inputs.to(self.device, non_blocking=pin), targets.to(self.device, non_blocking=pin)

    def rate_factor(self, batch: LMBatch) -> float:
        # As AWD-LSTM: the loss is a mean over the window's tokens, so a short window's step is
        # scaled down to weigh each token as a full window's do.
        return batch[0].shape[1] / self.config.seq_len if self.config.vary_seq_len else 1.0

    def loss(self, network: nn.Module, batch: LMBatch) -> tuple[Tensor, Tensor]:
        """(what to minimise, the loss to report): the mean NLL, plus AR/TAR when they are on."""
        inputs, targets = batch
        if self.penalty.active:
            nll, state, penalty = network(inputs, self.state, targets, self.penalty)
            loss = nll.mean()
            objective = loss + penalty
        else:
            nll, state = network(inputs, self.state, targets)
            objective = loss = nll.mean()
        self.state = detach_state(state)
        return objective, loss

    def advance(self, batch: LMBatch) -> None:
        self.batch_index += 1
        self.position += batch[0].shape[1]

    def tokens(self, batch: LMBatch) -> int:
        return batch[0].numel() * self.dist.world_size  # the global batch

    def evaluate(self) -> dict[str, float] | None:
        if not self.has_validation:
            return None
        total, count = 0.0, 0
        if self.val_stream is not None:  # None: this rank got no validation row
            loss, count = evaluate_stream(
                self.model,
                self.val_stream,
                self.device,
                precision=self.precision,
                max_batches=self.config.eval_batches,
            )
            total = loss * count
        total_all, count_all = self.dist.all_reduce_sum([total, count])
        return {"val_loss": total_all / count_all}

    @staticmethod
    def score(metrics: dict[str, float]) -> tuple[float, ...]:
        return (-metrics["val_loss"],)

    @staticmethod
    def describe(metrics: dict[str, float]) -> str:
        return ""

    def state_dict(self) -> dict[str, Any]:
        return {"batch_index": self.batch_index, "position": self.position}

    def tensors(self) -> dict[str, Tensor]:
        """h, c (L, B, H) gathered from all ranks (a collective: every rank calls it), so the
        checkpoint is a single process's and resumes on any number of ranks."""
        hidden, cell = (self.dist.gather_rows(t, dim=1) for t in self.state)
        return {"carry.hidden": hidden, "carry.cell": cell}

    def load_state_dict(self, state: dict[str, Any], tensors: dict[str, Tensor]) -> None:
        self.batch_index = int(state["batch_index"])
        # Checkpoints from before variable windows hold the window count alone.
        self.position = int(state.get("position", self.batch_index * self.config.seq_len))
        hidden, cell = tensors.get("carry.hidden"), tensors.get("carry.cell")
        config = self.model.config
        global_shape = (config.num_layers, self.config.batch_size, config.hidden_size)
        if hidden is not None and cell is not None and tuple(hidden.shape) == global_shape:
            rows = row_block(self.config.batch_size, self.dist.rank, self.dist.world_size)
            self.state = (
                hidden[:, rows.start : rows.stop].to(self.device),
                cell[:, rows.start : rows.stop].to(self.device),
            )
        else:
            self.state = self.model.core.initial_state(self.local_batch, self.device)


def language_model_trainer(
    run_config: RunConfig,
    tokenizer: TextTokenizer,
    train_ids: np.ndarray,
    val_ids: np.ndarray | None,
    out_dir: Path | str,
    *,
    on_event: Callable[[TrainEvent], None] | None = None,
    model: LanguageModel | None = None,
    distributed: Distributed | None = None,
    **options: Any,
) -> Trainer:
    """The training loop over a LanguageModelTask; a new model (seeded by random_state, its
    output bias set to the corpus's token frequencies) unless `model` is given. `options` go
    to lstmtext.training.loop.Trainer (stop_event, fingerprint)."""
    dist = distributed or Distributed()
    run_config, warning = fit_to_corpus(run_config, len(train_ids), dist.world_size)
    if warning and on_event is not None and dist.is_main:
        on_event(TrainEvent("warning", 0, 0, message=warning))
    config = run_config.train
    device = dist.device_for(select_device(config.device))
    precision = resolve_precision(config.precision, device)
    torch.manual_seed(config.random_state)
    if model is None:
        model = LanguageModel(run_config.model)
        model.set_output_prior(token_counts(train_ids, run_config.model.vocab_size))
    model.to(device)
    task = LanguageModelTask(model, config, train_ids, val_ids, device, precision, dist)
    return Trainer(
        run_config, tokenizer, task, out_dir, on_event=on_event, distributed=dist, device=device, **options
    )
