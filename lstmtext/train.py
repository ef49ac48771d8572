"""The language-model training loop: truncated BPTT, clipping, schedule, evaluation,
early stopping, NaN rollback, checkpoints and exact resume.

The loop reports through `on_event` and never prints; the caller decides what to show.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from lstmtext import checkpoint as ckpt
from lstmtext.config import RunConfig, TrainConfig
from lstmtext.corpus import TokenStream, fit_batch_shape, release_pages
from lstmtext.device import autocast_context, resolve_precision, select_device
from lstmtext.distributed import Distributed, local_batch_size, row_block
from lstmtext.errors import CheckpointError, ConfigError, CorpusError
from lstmtext.lm_ensemble import mixture_nll
from lstmtext.model import LanguageModel, State
from lstmtext.regularisation import ActivationPenalty
from lstmtext.schedule import slanted_triangular
from lstmtext.tokenizer import TextTokenizer
from lstmtext.weight_ema import WeightAverage, kept_weights

# Batches between dropping the pages of a memory-mapped corpus from RSS: each batch maps about
# B * T * 2 bytes more (13 KB at 64 x 100), so RSS grows by at most ~13 MB between two drops.
RELEASE_PAGES_EVERY = 1000


@dataclass(frozen=True)
class TrainEvent:
    """One thing the loop has to say. kind: log | eval | checkpoint | warning | stop, or prepare
    (tokenising a big corpus into its id cache: step and total_steps are bytes done and in all)."""

    kind: str
    step: int
    total_steps: int
    loss: float | None = None
    val_loss: float | None = None
    lr: float | None = None
    tokens_per_second: float | None = None
    elapsed: float = 0.0
    message: str = ""

    @property
    def eta(self) -> float | None:
        if self.step <= 0 or self.total_steps <= 0:
            return None
        return self.elapsed / self.step * max(self.total_steps - self.step, 0)


@dataclass
class TrainResult:
    steps: int
    best_val_loss: float | None
    best_step: int | None
    last_loss: float | None
    stop_reason: str  # finished | max_time | early_stopping | interrupted | diverged
    out_dir: Path
    elapsed: float
    history: list[dict[str, Any]] = field(default_factory=list)


def token_counts(ids: np.ndarray, vocab_size: int, limit: int = 64 << 20) -> Tensor:
    """How often each id occurs in (the first `limit` tokens of) a stream, memory-mapped or not."""
    head = np.asarray(ids[:limit], dtype=np.int64)
    return torch.from_numpy(np.bincount(head, minlength=vocab_size)[:vocab_size])


FUSED_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def fused_adam(params: Iterable[nn.Parameter]) -> bool:
    """Whether Adam/AdamW can run as one fused kernel over all of `params`.

    On CPU PyTorch's default is a loop of a dozen small ops per tensor; fused, the update of
    all of them is one kernel."""
    return all(p.device.type in ("cpu", "cuda") and p.dtype in FUSED_DTYPES for p in params)


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, weight_decay=config.weight_decay)
    adam = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return adam(params, lr=config.lr, weight_decay=config.weight_decay, fused=fused_adam(params))


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


# AWD-LSTM's variable BPTT (Merity et al. 2018, section 4.1): a window is T long with
# probability 0.95 and T / 2 otherwise, then its length is drawn from N(that, 5), at least 5.
FULL_WINDOW_PROBABILITY = 0.95
WINDOW_LENGTH_STDEV = 5.0
SHORTEST_WINDOW = 5


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

    Several models: the loss of their ensemble (lstmtext.lm_ensemble), each with its own state."""
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


class LearningRate:
    """Warmup, then plateau decay, cosine decay, ULMFiT's slanted triangle or a constant rate. Its state is
    plain JSON."""

    def __init__(self, config: TrainConfig, total_steps: int) -> None:
        self.config = config
        self.total_steps = total_steps
        self.plateau_scale = 1.0

    def at(self, step: int, elapsed: float = 0.0) -> float:
        """The rate for `step`; a run bound by --max-time alone anneals its cosine over the
        clock (`elapsed` seconds of `max_time`), since its number of steps is not known."""
        base = self.config.lr * self.plateau_scale
        if self.config.warmup_steps and step < self.config.warmup_steps:
            return base * (step + 1) / self.config.warmup_steps
        if self.config.lr_schedule not in ("cosine", "slanted"):
            return base
        if self.total_steps > 0:
            progress = min(step / self.total_steps, 1.0)
        elif self.config.max_time:
            progress = min(elapsed / self.config.max_time, 1.0)
        else:
            return base
        if self.config.lr_schedule == "slanted":
            return base * slanted_triangular(progress)
        return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))

    def on_stall(self) -> None:
        if self.config.lr_schedule == "plateau":
            self.plateau_scale *= self.config.lr_decay


class Trainer:
    """Trains a LanguageModel on a token-id stream and writes checkpoints into `out_dir`.

    With `distributed` (several ranks under torchrun, process group already joined), each
    rank trains on its block of the batch rows through DistributedDataParallel;
    `config.batch_size` is the global batch. Rank 0 alone emits events and writes files.
    """

    def __init__(
        self,
        run_config: RunConfig,
        tokenizer: TextTokenizer,
        train_ids: np.ndarray,
        val_ids: np.ndarray | None,
        out_dir: Path,
        *,
        on_event: Callable[[TrainEvent], None] | None = None,
        stop_event: threading.Event | None = None,
        model: LanguageModel | None = None,
        distributed: Distributed | None = None,
        fingerprint: dict[str, str] | None = None,
    ) -> None:
        config = run_config.train
        # sha256 of tokenizer and corpus ids: a resume checks it against the checkpoint's.
        self.fingerprint = fingerprint
        self.dist = distributed or Distributed()
        world = self.dist.world_size
        self.on_event = (on_event or (lambda event: None)) if self.dist.is_main else (lambda event: None)
        local_batch_size(config.batch_size, world)  # refuse a global batch that does not split evenly
        batch_size, seq_len, warning = fit_batch_shape(len(train_ids), config.batch_size, config.seq_len)
        if warning and batch_size % world:
            batch_size -= batch_size % world
            if batch_size == 0:
                raise ConfigError(f"the corpus is too short to give each of {world} processes a batch row")
            warning += f" (rounded down to {batch_size}, a multiple of the {world} processes)"
        if warning:
            self.on_event(TrainEvent("warning", 0, 0, message=warning))
            config = replace(config, batch_size=batch_size, seq_len=seq_len)
            run_config = replace(run_config, train=config)
        self.run_config = run_config
        self.config = config
        self.tokenizer = tokenizer
        self.out_dir = Path(out_dir)
        self.stop_event = stop_event or threading.Event()
        self.device = self.dist.device_for(select_device(config.device))
        self.precision = resolve_precision(config.precision, self.device)
        torch.manual_seed(config.random_state)
        if model is None:
            model = LanguageModel(run_config.model)
            model.set_output_prior(token_counts(train_ids, run_config.model.vocab_size))
        self.model = model
        self.model.to(self.device)
        # What the loop runs forward and backward: DDP over self.model when there are peers.
        self.network = self.dist.wrap(self.model, self.device)
        if self.dist.enabled:
            torch.manual_seed(config.random_state + self.dist.rank)  # each rank its own dropout masks
        self.optimizer = make_optimizer(self.model, config)
        self.average = WeightAverage(self.model, config.ema) if config.ema > 0 else None
        self.penalty = ActivationPenalty(config.activation_penalty, config.temporal_penalty)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.precision == "fp16")
        self.local_batch = config.batch_size // world
        train_stream = shard_stream(train_ids, config.batch_size, config.seq_len, self.dist.rank, world)
        assert train_stream is not None  # every rank has local_batch >= 1 rows
        self.train_stream = train_stream
        self.val_stream = None
        if val_ids is not None and len(val_ids) >= 2:
            val_batch, val_seq_len, _ = fit_batch_shape(len(val_ids), config.batch_size, config.seq_len)
            # Validation rows may not split evenly (or at all); losses are summed over ranks.
            self.val_stream = shard_stream(val_ids, val_batch, val_seq_len, self.dist.rank, world)
        self.has_validation = val_ids is not None and len(val_ids) >= 2
        self.steps_per_epoch = math.ceil(self.train_stream.inputs_per_row / mean_window_length(config))
        self.total_steps = self._total_steps()
        self.schedule = LearningRate(config, self.total_steps)
        # Loop position and history: everything a resume must restore.
        self.step = 0
        self.batch_index = 0  # windows taken this epoch
        self.position = 0  # where in each row this epoch's next window starts
        # h, c (L, B / world, H): this rank's rows of the carried state
        self.state: State = self.model.core.initial_state(self.local_batch, self.device)
        self.best_val_loss: float | None = None
        self.best_step: int | None = None
        self.stalled_evals = 0
        self.rollbacks = 0
        self.elapsed_before = 0.0
        self.clock = 0.0  # seconds trained (over all sessions of a resumed run), as all ranks agree
        self.history: list[dict[str, Any]] = []
        self.last_saved_step = -1

    def _total_steps(self) -> int:
        if self.config.max_steps is not None:
            return self.config.max_steps
        epochs = (
            self.config.epochs if self.config.epochs is not None else (None if self.config.max_time else 1)
        )
        if epochs is None:
            return 0  # time-bound only: unknown
        return max(1, round(epochs * self.steps_per_epoch))

    # ----- checkpoints -------------------------------------------------------------

    def _trainer_state(self) -> dict[str, Any]:
        _, groups = ckpt.optimizer_tensors(self.optimizer)
        return {
            "step": self.step,
            "batch_index": self.batch_index,
            "position": self.position,
            "best_val_loss": self.best_val_loss,
            "best_step": self.best_step,
            "stalled_evals": self.stalled_evals,
            "rollbacks": self.rollbacks,
            "plateau_scale": self.schedule.plateau_scale,
            "elapsed": self.elapsed_before + self._elapsed(),
            "param_groups": groups,
            "torch_rng": torch.get_rng_state().tolist(),
            "cuda_rng": [s.tolist() for s in torch.cuda.get_rng_state_all()]
            if self.device.type == "cuda"
            else [],
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "fingerprint": self.fingerprint,
        }

    def save_resume(self) -> None:
        """Write checkpoints/last (rank 0), with the carried state of the whole global batch."""
        self.last_saved_step = self.step
        # h, c (L, B, H): gathered from all ranks (a collective, so every rank comes here), so
        # the checkpoint is the same as a single process's and resumes on any number of ranks.
        hidden, cell = (self.dist.gather_rows(t, dim=1) for t in self.state)
        if self.dist.is_main:
            with self._saving():
                self._write_resume(hidden, cell)
        self.dist.barrier()  # no rank reads checkpoints/last (rollback) before it is complete

    def _write_resume(self, hidden: Tensor, cell: Tensor) -> None:
        # The history first: a crash between the two leaves metrics a step ahead of the checkpoint,
        # which a resume trims (restore() drops records past its step), never a checkpoint whose
        # history was lost.
        ckpt.atomic_write_text(
            self.out_dir / ckpt.METRICS, "".join(json.dumps(h) + "\n" for h in self.history)
        )
        tensors, _ = ckpt.optimizer_tensors(self.optimizer)
        tensors["carry.hidden"], tensors["carry.cell"] = hidden, cell
        if self.average is not None:
            tensors |= self.average.tensors()
        ckpt.write_resume_checkpoint(
            self.out_dir / "checkpoints" / "last",
            config=self.run_config,
            tokenizer=self.tokenizer,
            model=self.model,
            extra_tensors=tensors,
            trainer_state=self._trainer_state(),
        )
        if self.config.keep_last > 0:
            step_dir = self.out_dir / "checkpoints" / f"step-{self.step:08d}"
            if not step_dir.exists():
                # Copied under a hidden name, then renamed: a full disk never leaves half a step folder.
                partial = step_dir.with_name(f".{step_dir.name}.partial")
                shutil.rmtree(partial, ignore_errors=True)
                try:
                    shutil.copytree(self.out_dir / "checkpoints" / "last", partial)
                    os.replace(partial, step_dir)
                finally:
                    shutil.rmtree(partial, ignore_errors=True)
            step_dirs = sorted(p for p in step_dir.parent.glob("step-*") if p.is_dir())
            for old in step_dirs[: -self.config.keep_last]:
                shutil.rmtree(old, ignore_errors=True)

    def _save_best(self) -> None:
        if not self.dist.is_main:
            return
        with self._saving(), kept_weights(self.average):
            ckpt.save_weights(self.model, self.out_dir / ckpt.WEIGHTS)
            ckpt.atomic_write_text(
                self.out_dir / ckpt.BEST,
                json.dumps({"step": self.best_step, "val_loss": self.best_val_loss}, indent=1) + "\n",
            )

    @contextlib.contextmanager
    def _saving(self) -> Iterator[None]:
        """A full disk or a read-only folder as one clear error. Every write is atomic (a temp
        file or folder renamed into place), so what was saved before is still whole."""
        try:
            yield
        except OSError as error:
            raise ckpt.save_error(self.out_dir, error) from error

    def restore(self, directory: Path) -> None:
        """Put model, optimizer, RNG and loop position back as they were at `directory`'s save."""
        directory = ckpt.resume_directory(directory)
        tensors, state = ckpt.read_resume_checkpoint(directory)
        self._check_fingerprint(state.get("fingerprint"))
        ckpt.load_weights(self.model, directory / ckpt.WEIGHTS)
        self.model.to(self.device)
        try:
            ckpt.restore_optimizer(self.optimizer, tensors, state["param_groups"])
            if self.average is not None:
                self.average.load(tensors)
            self.step = int(state["step"])
            self.batch_index = int(state["batch_index"])
            # Checkpoints from before variable windows hold the window count alone.
            self.position = int(state.get("position", self.batch_index * self.config.seq_len))
            self.best_val_loss = state["best_val_loss"]
            self.best_step = state["best_step"]
            self.stalled_evals = int(state["stalled_evals"])
            self.rollbacks = int(state.get("rollbacks", 0))
            self.schedule.plateau_scale = float(state["plateau_scale"])
            self.elapsed_before = float(state.get("elapsed", 0.0))
            torch.set_rng_state(torch.tensor(state["torch_rng"], dtype=torch.uint8))
            if self.device.type == "cuda" and state.get("cuda_rng"):
                torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda_rng"]])
            if state.get("scaler") and self.scaler.is_enabled():
                self.scaler.load_state_dict(state["scaler"])
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(
                f"cannot resume from {directory}: trainer state is incomplete ({error})"
            ) from None
        if self.dist.enabled:
            # The checkpoint holds rank 0's RNG; reseeding keeps the ranks' dropout masks apart.
            torch.manual_seed(self.config.random_state + self.step * self.dist.world_size + self.dist.rank)
        # h, c (L, B, H) of the global batch; this rank carries its block of rows (L, B/world, H).
        hidden, cell = tensors.get("carry.hidden"), tensors.get("carry.cell")
        global_shape = (self.model.config.num_layers, self.config.batch_size, self.model.config.hidden_size)
        if hidden is not None and cell is not None and tuple(hidden.shape) == global_shape:
            rows = row_block(self.config.batch_size, self.dist.rank, self.dist.world_size)
            self.state = (
                hidden[:, rows.start : rows.stop].to(self.device),
                cell[:, rows.start : rows.stop].to(self.device),
            )
        else:
            self.state = self.model.core.initial_state(self.local_batch, self.device)
        self.history = [h for h in ckpt.read_metrics(self.out_dir) if h.get("step", 0) <= self.step]
        if self.dist.is_main:  # records logged after this checkpoint are about to be retrained
            with self._saving():
                ckpt.atomic_write_text(
                    self.out_dir / ckpt.METRICS, "".join(json.dumps(h) + "\n" for h in self.history)
                )
        self.last_saved_step = self.step

    def _check_fingerprint(self, saved: object) -> None:
        """Checkpoints from before fingerprints (or a caller without one) are not checked."""
        if not isinstance(saved, dict) or not self.fingerprint:
            return
        what = {"tokenizer": "tokenizer", "corpus": "corpus (or its validation split)"}
        for key, name in what.items():
            if key in saved and key in self.fingerprint and saved[key] != self.fingerprint[key]:
                raise CheckpointError(
                    f"cannot resume {self.out_dir}: the {name} differs from the one the run trained "
                    "on; resume with the same data and options, or start a new run"
                )

    # ----- the loop ----------------------------------------------------------------

    def _elapsed(self) -> float:
        return time.perf_counter() - self._started

    def _batches(self) -> Iterator[tuple[Tensor, Tensor]]:
        while True:
            if self.position >= self.train_stream.inputs_per_row:
                self.batch_index, self.position = 0, 0
                self.state = self.model.core.initial_state(self.local_batch, self.device)
            if self.batch_index % RELEASE_PAGES_EVERY == 0:
                release_pages(self.train_stream.rows)  # a memory-mapped corpus: keep RSS flat
            inputs, targets = self.train_stream.window(self.position, window_length(self.config, self.step))
            pin = self.device.type == "cuda"
            if pin:
                inputs, targets = inputs.pin_memory(), targets.pin_memory()
            yield inputs.to(self.device, non_blocking=pin), targets.to(self.device, non_blocking=pin)

    def _train_step(self, inputs: Tensor, targets: Tensor, lr: float) -> float:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with autocast_context(self.precision, self.device):
            if self.penalty.active:
                nll, state, penalty = self.network(inputs, self.state, targets, self.penalty)
                loss = nll.mean()
                objective = loss + penalty
            else:
                nll, state = self.network(inputs, self.state, targets)
                objective = loss = nll.mean()
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(objective).backward()
        grad_norm = None
        if self.config.clip > 0:
            self.scaler.unscale_(self.optimizer)
            grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.state = detach_state(state)
        # A finite loss can still come with an update that leaves a weight non-finite (an inf
        # gradient); such a step counts as a non-finite loss, so its weights never reach a checkpoint.
        # The clipped norm already tells (one scalar, no pass over the weights), except under fp16's
        # scaler, which skips inf-gradient steps by design, and without clipping.
        if grad_norm is not None and not self.scaler.is_enabled():
            finite = grad_norm.isfinite()
        else:
            finite = torch.stack([p.isfinite().all() for p in self.model.parameters()]).all()
        loss = torch.where(finite, loss.detach(), torch.nan)
        # .item() syncs with the device once per step; the loss is needed for the NaN guard anyway.
        # Averaged over ranks: the loss of the global batch, so every rank takes the same NaN decision.
        return self.dist.mean(loss.item())

    def _evaluate(self) -> float | None:
        if not self.has_validation:
            return None
        total, count = 0.0, 0
        if self.val_stream is not None:  # None: this rank got no validation row
            with kept_weights(self.average):
                loss, count = evaluate_stream(
                    self.model,
                    self.val_stream,
                    self.device,
                    precision=self.precision,
                    max_batches=self.config.eval_batches,
                )
            total = loss * count
        total_all, count_all = self.dist.all_reduce_sum([total, count])
        return total_all / count_all

    def _rollback(self, loss: float) -> bool:
        """Non-finite loss: go back to the last checkpoint with half the rate. False: give up."""
        last = self.out_dir / "checkpoints" / "last"
        self.rollbacks += 1
        if self.rollbacks > 3 or not last.exists():
            return False
        # The checkpoint predates this rollback: its count and rate must not undo it, or a loss
        # that stays NaN would roll back forever at the same rate.
        rollbacks, scale = self.rollbacks, self.schedule.plateau_scale
        self.restore(last)
        self.rollbacks = rollbacks
        self.schedule.plateau_scale = scale * 0.5
        self.on_event(
            TrainEvent(
                "warning",
                self.step,
                self.total_steps,
                message=f"loss became {loss}; rolled back to step {self.step} with learning rate halved",
            )
        )
        return True

    def _should_stop(self) -> str | None:
        """max_time or interrupted; decided by all ranks together, so they stop at the same step.

        The clock is the slowest rank's, and it is also the clock a time-bound cosine follows:
        every rank then steps with the same learning rate."""
        elapsed, interrupted = self.dist.max_over_ranks(
            [self.elapsed_before + self._elapsed(), float(self.stop_event.is_set())]
        )
        self.clock = elapsed
        if self.config.max_time is not None and elapsed >= self.config.max_time:
            return "max_time"
        return "interrupted" if interrupted else None

    def fit(self, resume: bool = False) -> TrainResult:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            last = self.out_dir / "checkpoints" / "last"
            if not ckpt.resume_directory(last).exists():
                raise CheckpointError(f"nothing to resume: {last} does not exist")
            self.restore(last)
        elif self.dist.is_main:
            with self._saving():
                ckpt.write_model_files(self.out_dir, self.run_config, self.tokenizer, self.model)
                ckpt.atomic_write_text(self.out_dir / ckpt.METRICS, "")  # a new run: no earlier run's records
        self._started = time.perf_counter()
        self.model.train()
        batches = self._batches()
        window_tokens, window_start = 0, time.perf_counter()
        last_loss: float | None = None
        stop_reason = "finished"
        log_every = max(1, min(50, self.config.eval_every // 4 or 1))
        while True:
            if self.total_steps and self.step >= self.total_steps:
                break
            reason = self._should_stop()
            if reason is not None:
                stop_reason = reason
                break
            inputs, targets = next(batches)
            lr = self.schedule.at(self.step, self.clock)
            # As AWD-LSTM: the loss is a mean over the window's tokens, so a short window's step
            # is scaled down to weigh each token as a full window's do.
            step_lr = lr * inputs.shape[1] / self.config.seq_len if self.config.vary_seq_len else lr
            loss = self._train_step(inputs, targets, step_lr)
            if not math.isfinite(loss):
                if self._rollback(loss):
                    batches = self._batches()
                    continue
                stop_reason = "diverged"
                self.on_event(
                    TrainEvent("stop", self.step, self.total_steps, message=f"loss became {loss}; stopping")
                )
                break
            self.step += 1
            self.batch_index += 1
            self.position += inputs.shape[1]
            if self.average is not None:
                self.average.update(self.step)
            last_loss = loss
            window_tokens += inputs.numel() * self.dist.world_size  # the global batch
            if self.step % log_every == 0:
                now = time.perf_counter()
                speed = window_tokens / max(now - window_start, 1e-9)
                window_tokens, window_start = 0, now
                record = {"step": self.step, "loss": loss, "lr": lr, "tokens_per_second": speed}
                record |= {"kind": "log", "elapsed": self.elapsed_before + self._elapsed()}
                self.history.append(record)
                if self.dist.is_main:
                    with self._saving():
                        ckpt.append_metrics(self.out_dir, record)
                self.on_event(
                    TrainEvent(
                        "log",
                        self.step,
                        self.total_steps,
                        loss=loss,
                        lr=lr,
                        tokens_per_second=speed,
                        elapsed=self.elapsed_before + self._elapsed(),
                    )
                )
            if self.step % self.config.eval_every == 0 and self._eval_and_save(loss, lr):
                stop_reason = "early_stopping"
                break
        if stop_reason != "diverged" and self.last_saved_step != self.step:
            if stop_reason == "interrupted":
                self.save_resume()
            elif self.step > 0:
                self._eval_and_save(last_loss, self.schedule.at(self.step, self.clock))
        if self.best_step is None and self.step > 0 and stop_reason != "diverged" and self.dist.is_main:
            with self._saving(), kept_weights(self.average):  # no validation: last is best
                ckpt.save_weights(self.model, self.out_dir / ckpt.WEIGHTS)
        return TrainResult(
            steps=self.step,
            best_val_loss=self.best_val_loss,
            best_step=self.best_step,
            last_loss=last_loss,
            stop_reason=stop_reason,
            out_dir=self.out_dir,
            elapsed=self.elapsed_before + self._elapsed(),
            history=self.history,
        )

    def _eval_and_save(self, loss: float | None, lr: float) -> bool:
        """Evaluate, keep the best weights, write the resume checkpoint. True: stop early."""
        val_loss = self._evaluate()
        improved = val_loss is not None and (self.best_val_loss is None or val_loss < self.best_val_loss)
        if improved:
            self.best_val_loss, self.best_step = val_loss, self.step
            self.stalled_evals = 0
            self._save_best()
        elif val_loss is not None:
            self.stalled_evals += 1
            self.schedule.on_stall()
        elapsed = self.elapsed_before + self._elapsed()
        self.history.append(
            {
                "kind": "eval",
                "step": self.step,
                "loss": loss,
                "val_loss": val_loss,
                "lr": lr,
                "elapsed": elapsed,
            }
        )
        self.save_resume()
        self.on_event(
            TrainEvent(
                "eval", self.step, self.total_steps, loss=loss, val_loss=val_loss, lr=lr, elapsed=elapsed
            )
        )
        patience = self.config.patience
        return patience is not None and val_loss is not None and self.stalled_evals >= patience
