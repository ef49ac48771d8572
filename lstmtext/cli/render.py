"""Showing training progress: a rich live panel on a terminal, one plain line per event otherwise.

A language model's run is shown by TrainingDisplay, a classifier's (a few hundred steps, where
a live panel adds little) by classifier_progress; both end in summary_line.
"""

from __future__ import annotations

import math
import sys
from types import TracebackType

from rich.columns import Columns
from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from lstmtext.events import TrainEvent, TrainResult


def _duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _bits(loss: float | None) -> str:
    return "-" if loss is None else f"{loss / math.log(2):.3f}"


def _ppl(loss: float | None) -> str:
    return "-" if loss is None else f"{math.exp(min(loss, 50)):.2f}"


def eval_line(event: TrainEvent) -> str:
    """The start of an evaluation's line: `step 400/1000  loss 1.2345  val_loss 1.3456`."""
    total = f"/{event.total_steps}" if event.total_steps else ""
    loss = "-" if event.loss is None else f"{event.loss:.4f}"
    val = "-" if event.val_loss is None else f"{event.val_loss:.4f}"
    return f"step {event.step}{total}  loss {loss}  val_loss {val}"


def best_text(value: float | None, step: int | None) -> str:
    return "-" if value is None else f"{value:.4f} at step {step}"


def summary_line(result: TrainResult) -> str:
    """The start of a run's last line: `finished: 400 steps in 1.2 min`."""
    return f"{result.stop_reason}: {result.steps} steps in {result.elapsed / 60:.1f} min"


def classifier_progress(event: TrainEvent) -> None:
    """One line per evaluation of a classifier's run, and its warnings, on stderr."""
    if event.kind in ("warning", "stop"):
        print(
            event.message if event.kind == "stop" else f"note: {event.message}", file=sys.stderr, flush=True
        )
    elif event.kind == "eval":
        print(
            f"{eval_line(event)}  {event.message}  elapsed {event.elapsed:.0f}s", file=sys.stderr, flush=True
        )


class TrainingDisplay:
    """Renders TrainEvents to stderr. Use as a context manager around training."""

    def __init__(self, console: Console | None = None, unit: str = "token") -> None:
        self.console = console or Console(stderr=True)
        self.unit = unit
        self.live: Live | None = None
        self.last: TrainEvent | None = None
        self.val_loss: float | None = None
        self.best: float | None = None
        self.prepare_tenths = 0  # without a terminal: tenths of the corpus reported

    def __enter__(self) -> TrainingDisplay:
        if self.console.is_terminal:
            self.live = Live(self._table(), console=self.console, refresh_per_second=4, transient=False)
            self.live.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.live is not None:
            self.live.__exit__(kind, value, tb)

    def _table(self) -> Table:
        event = self.last
        table = Table(show_header=True, header_style="bold", box=None)
        for column in ("step", "loss", "val loss", "val ppl", f"bits/{self.unit}", "lr", "tokens/s", "ETA"):
            table.add_column(column, justify="right")
        if event is not None:
            total = f"/{event.total_steps}" if event.total_steps else ""
            table.add_row(
                f"{event.step}{total}",
                "-" if event.loss is None else f"{event.loss:.4f}",
                "-" if self.val_loss is None else f"{self.val_loss:.4f}",
                _ppl(self.val_loss),
                _bits(self.val_loss if self.val_loss is not None else event.loss),
                "-" if event.lr is None else f"{event.lr:.2e}",
                "-" if event.tokens_per_second is None else f"{event.tokens_per_second:,.0f}",
                _duration(event.eta),
            )
        return table

    def _prepare(self, event: TrainEvent) -> None:
        """Tokenising a big corpus: a bar on a terminal, a line per tenth otherwise."""
        done, total = event.step, max(event.total_steps, 1)
        speed = done / 1e6 / max(event.elapsed, 1e-9)
        status = f"{done / 1e6:,.0f} of {total / 1e6:,.0f} MB, {speed:,.0f} MB/s"
        if self.live is not None and done >= total:
            self.live.update(self._table())  # prepared: back to the training table
        elif self.live is not None:
            bar = ProgressBar(total=total, completed=done, width=40)
            self.live.update(Group(Text(event.message), Columns([bar, Text(status)])))
            return
        tenth = done * 10 // total
        if tenth > self.prepare_tenths:
            self.prepare_tenths = tenth
            print(f"{event.message}: {tenth * 10} % ({status})", file=sys.stderr, flush=True)

    def __call__(self, event: TrainEvent) -> None:
        if event.kind == "prepare":
            self._prepare(event)
            return
        if event.kind in ("warning", "note", "stop"):
            # One line, however narrow the terminal, in the form every lstmtext warning has.
            prefix = {"warning": "lstmtext: warning: ", "note": "lstmtext: "}.get(event.kind, "")
            text = prefix + event.message
            self.console.print(text, markup=False, highlight=False, soft_wrap=True)
            return
        if event.kind == "eval":
            self.val_loss = event.val_loss
            if event.val_loss is not None and (self.best is None or event.val_loss < self.best):
                self.best = event.val_loss
            if self.live is None:
                print(
                    f"{eval_line(event)}  val_ppl {_ppl(event.val_loss)}  "
                    f"bits/{self.unit} {_bits(event.val_loss)}  elapsed {_duration(event.elapsed)}",
                    file=sys.stderr,
                    flush=True,
                )
        if event.kind == "log" or self.last is None:
            self.last = event
        if self.live is not None:
            self.live.update(self._table())
