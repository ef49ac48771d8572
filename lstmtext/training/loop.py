"""The training loop, one for every task: schedule, optimizer (discriminative rates, gradual
unfreezing), clipping, mixed precision, weight averaging, evaluation, early stopping, NaN
rollback, checkpoints, exact resume and several processes.

A task (lstmtext.lm.task, lstmtext.classifier.task) supplies the batches, the loss, the
validation figures and what "better" means; the loop does the rest the same way for all.
It reports through `on_event` and never prints; the caller decides what to show.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lstmtext.config import RunConfig
from lstmtext.data.tokenizer import TextTokenizer
from lstmtext.device import autocast_context, resolve_precision, select_device
from lstmtext.distributed import Distributed
from lstmtext.errors import CheckpointError, ConfigError
from lstmtext.events import TrainEvent, TrainResult
from lstmtext.runs import checkpoint as ckpt
from lstmtext.runs.resume_files import check_fingerprint, restore_rng, rng_state, saved_best, write_last
from lstmtext.training.optimization import LearningRate, Optimization
from lstmtext.training.task import Task
from lstmtext.training.weight_ema import WeightAverage, kept_weights


class Trainer:
    """Trains `task.model` and writes its checkpoints into `out_dir`.

    With `distributed` (several ranks under torchrun, process group already joined), the model
    runs under DistributedDataParallel and the task gives each rank its share of the batch;
    rank 0 alone emits events and writes files. Seed torch before building the task's model:
    the loop draws its dropout masks from the global generator as it finds it.
    """

    def __init__(
        self,
        run_config: RunConfig,
        tokenizer: TextTokenizer,
        task: Task,
        out_dir: Path | str,
        *,
        on_event: Callable[[TrainEvent], None] | None = None,
        stop_event: threading.Event | None = None,
        distributed: Distributed | None = None,
        fingerprint: dict[str, str] | None = None,
        device: torch.device | None = None,
    ) -> None:
        config = run_config.train
        self.dist = distributed or Distributed()
        self.on_event = (on_event or (lambda event: None)) if self.dist.is_main else (lambda event: None)
        self.run_config = run_config
        self.config = config
        self.tokenizer = tokenizer
        self.task = task
        self.out_dir = Path(out_dir)
        self.stop_event = stop_event or threading.Event()
        # sha256 of tokenizer and training data: a resume checks it against the checkpoint's.
        self.fingerprint = fingerprint
        self.device = device or self.dist.device_for(select_device(config.device))
        self.precision = resolve_precision(config.precision, self.device)
        self.model = task.model.to(self.device)
        if self.dist.enabled and config.unfreeze_every:
            raise ConfigError("gradual unfreezing runs in one process only: leave out --unfreeze or --nproc")
        # What the loop runs forward and backward: DDP over self.model when there are peers.
        self.network = self.dist.wrap(self.model, self.device)
        if self.dist.enabled:
            torch.manual_seed(config.random_state + self.dist.rank)  # each rank its own dropout masks
        self.optimization = Optimization(self.model, config)
        self.optimizer = self.optimization.optimizer
        self.average = WeightAverage(self.model, config.ema) if config.ema > 0 else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.precision == "fp16")
        self.steps_per_epoch = task.steps_per_epoch
        self.total_steps = self._total_steps()
        self.schedule = LearningRate(config, self.total_steps)
        # Loop position and history: with the task's own state, everything a resume restores.
        self.step = 0
        self.best_score: tuple[float, ...] | None = None
        self.best_metrics: dict[str, float] = {}
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

    @property
    def best_val_loss(self) -> float | None:
        return self.best_metrics.get("val_loss")

    # ----- checkpoints -------------------------------------------------------------

    def _trainer_state(self) -> dict[str, Any]:
        _, groups = ckpt.optimizer_tensors(self.optimizer)
        return (
            {
                "step": self.step,
                "best_val_loss": self.best_val_loss,
                "best_score": None if self.best_score is None else list(self.best_score),
                "best_metrics": self.best_metrics,
                "best_step": self.best_step,
                "stalled_evals": self.stalled_evals,
                "rollbacks": self.rollbacks,
                "plateau_scale": self.schedule.plateau_scale,
                "elapsed": self.elapsed_before + self._elapsed(),
                "param_groups": groups,
                "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
                "fingerprint": self.fingerprint,
            }
            | rng_state(self.device)
            | self.task.state_dict()
        )

    def save_resume(self) -> None:
        """Write checkpoints/last (rank 0); every rank comes here (the task may gather its state)."""
        self.last_saved_step = self.step
        task_tensors = self.task.tensors()
        if self.dist.is_main:
            with self._saving():
                # The history first: a crash between the two leaves metrics a step ahead of the
                # checkpoint, which a resume trims, never a checkpoint whose history was lost.
                self._write_history()
                tensors, _ = ckpt.optimizer_tensors(self.optimizer)
                tensors |= task_tensors
                if self.average is not None:
                    tensors |= self.average.tensors()
                write_last(
                    self.out_dir,
                    config=self.run_config,
                    tokenizer=self.tokenizer,
                    model=self.model,
                    tensors=tensors,
                    trainer_state=self._trainer_state(),
                    step=self.step,
                    keep_last=self.config.keep_last,
                )
        self.dist.barrier()  # no rank reads checkpoints/last (rollback) before it is complete

    def _write_history(self) -> None:
        text = "".join(json.dumps(h) + "\n" for h in self.history)
        ckpt.atomic_write_text(self.out_dir / ckpt.METRICS, text)

    def _save_best(self) -> None:
        if not self.dist.is_main:
            return
        with self._saving(), kept_weights(self.average):
            ckpt.save_weights(self.model, self.out_dir / ckpt.WEIGHTS)
            record = {"step": self.best_step} | self.best_metrics
            ckpt.atomic_write_text(self.out_dir / ckpt.BEST, json.dumps(record, indent=1) + "\n")

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
        check_fingerprint(state.get("fingerprint"), self.fingerprint, self.out_dir)
        ckpt.load_weights(self.model, directory / ckpt.WEIGHTS)
        self.model.to(self.device)
        try:
            ckpt.restore_optimizer(self.optimizer, tensors, state["param_groups"])
            if self.average is not None:
                self.average.load(tensors)
            self.step = int(state["step"])
            self.best_step = state["best_step"]
            self.best_metrics, self.best_score = saved_best(state)
            self.stalled_evals = int(state["stalled_evals"])
            self.rollbacks = int(state.get("rollbacks", 0))
            self.schedule.plateau_scale = float(state["plateau_scale"])
            self.elapsed_before = float(state.get("elapsed", 0.0))
            restore_rng(state, self.device)
            if state.get("scaler") and self.scaler.is_enabled():
                self.scaler.load_state_dict(state["scaler"])
            self.task.load_state_dict(state, tensors)
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(
                f"cannot resume from {directory}: trainer state is incomplete ({error})"
            ) from None
        if self.dist.enabled:
            # The checkpoint holds rank 0's RNG; reseeding keeps the ranks' dropout masks apart.
            torch.manual_seed(self.config.random_state + self.step * self.dist.world_size + self.dist.rank)
        self.history = [h for h in ckpt.read_metrics(self.out_dir) if h.get("step", 0) <= self.step]
        if self.dist.is_main:  # records logged after this checkpoint are about to be retrained
            with self._saving():
                self._write_history()
        self.last_saved_step = self.step

    # ----- the loop ----------------------------------------------------------------

    def _elapsed(self) -> float:
        return time.perf_counter() - self._started

    def _train_step(self, batch: Any, lr: float) -> float:
        self.optimization.set_rate(lr)
        with autocast_context(self.precision, self.device):
            objective, loss = self.task.loss(self.network, batch)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(objective).backward()
        grad_norm = None
        if self.config.clip > 0:
            self.scaler.unscale_(self.optimizer)
            grad_norm = nn.utils.clip_grad_norm_(self.optimization.trainable, self.config.clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
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
        self._warn(f"loss became {loss}; rolled back to step {self.step} with learning rate halved")
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
            self.optimization.unfreeze(self.step, self._warn)
            batch = self.task.next_batch(self.step)
            lr = self.schedule.at(self.step, self.clock)
            loss = self._train_step(batch, lr * self.task.rate_factor(batch))
            if not math.isfinite(loss):
                if self._rollback(loss):
                    continue
                stop_reason = "diverged"
                message = f"loss became {loss}; stopping"
                self.on_event(TrainEvent("stop", self.step, self.total_steps, message=message))
                break
            self.step += 1
            self.task.advance(batch)
            if self.average is not None:
                self.average.update(self.step)
            last_loss = loss
            window_tokens += self.task.tokens(batch)
            if self.step % log_every == 0:
                now = time.perf_counter()
                speed = window_tokens / max(now - window_start, 1e-9)
                window_tokens, window_start = 0, now
                self._log(loss, lr, speed)
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
            best_metrics=dict(self.best_metrics),
            labels=self.run_config.labels,
        )

    def _warn(self, message: str) -> None:
        self.on_event(TrainEvent("warning", self.step, self.total_steps, message=message))

    def _log(self, loss: float, lr: float, speed: float) -> None:
        elapsed = self.elapsed_before + self._elapsed()
        record: dict[str, Any] = {"step": self.step, "loss": loss, "lr": lr, "tokens_per_second": speed}
        record |= {"kind": "log", "elapsed": elapsed}
        self.history.append(record)
        if self.dist.is_main:
            with self._saving():
                ckpt.append_metrics(self.out_dir, record)
        self.on_event(
            TrainEvent(
                "log", self.step, self.total_steps, loss=loss, lr=lr, tokens_per_second=speed, elapsed=elapsed
            )
        )

    def _eval_and_save(self, loss: float | None, lr: float) -> bool:
        """Evaluate, keep the best weights, write the resume checkpoint. True: stop early."""
        with kept_weights(self.average):
            metrics = self.task.evaluate()
        message = ""
        if metrics is not None:
            score = self.task.score(metrics)
            message = self.task.describe(metrics)
            if self.best_score is None or score > self.best_score:
                self.best_score, self.best_metrics, self.best_step = score, metrics, self.step
                self.stalled_evals = 0
                self._save_best()
            else:
                self.stalled_evals += 1
                self.schedule.on_stall()
        val_loss = None if metrics is None else metrics["val_loss"]
        elapsed = self.elapsed_before + self._elapsed()
        record: dict[str, Any] = {"kind": "eval", "step": self.step, "loss": loss, "val_loss": val_loss}
        self.history.append(record | {"lr": lr, "elapsed": elapsed} | (metrics or {}))
        self.save_resume()
        self.on_event(
            TrainEvent(
                "eval",
                self.step,
                self.total_steps,
                loss=loss,
                val_loss=val_loss,
                lr=lr,
                elapsed=elapsed,
                message=message,
            )
        )
        patience = self.config.patience
        return patience is not None and metrics is not None and self.stalled_evals >= patience
