"""Options that `lstmtext train` and `lstmtext train-classifier` share, declared once.

Each alias is the option's type with its help; a command gives it its name (the parameter's)
and its default. Both commands run the one training loop, so an option means the same in each;
those whose help must speak of the task's data (--val, --val-fraction, --batch-size,
--eval-every) are declared in each command. No torch here: both commands show their help at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from lstmtext.config import Level, Optimizer, Precision, Schedule
from lstmtext.errors import Interrupted

MODEL = "Model"
DATA = "Data"
OPTIM = "Optimisation"
RUN = "Run"
CLASSIFY = "Classification"


class StopRequest(threading.Event):
    """The event a training loop polls between steps; it knows whether anyone polls it yet."""

    polled = False

    def is_set(self) -> bool:
        self.polled = True
        return super().is_set()


@contextlib.contextmanager
def stop_on_signals() -> Iterator[tuple[threading.Event, list[int]]]:
    """SIGINT/SIGTERM set an event the loop polls between steps, so it can save and return.

    Until the loop first polls it, the command is still reading its data (perhaps from a FIFO
    or a slow disk, for minutes) and has nothing to save: a flag no one reads would leave it
    deaf to the signal, so the signal ends it at once instead (exit 130 or 143, one line).
    """
    stop = StopRequest()
    received: list[int] = []

    def handle(signum: int, frame: object) -> None:
        received.append(signum)
        stop.set()
        if not stop.polled:
            raise Interrupted("interrupted", signum)

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop, received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# ---- data and tokenizer

LevelOption = Annotated[Level, typer.Option(help="Token level.", rich_help_panel=DATA)]
VocabSize = Annotated[int, typer.Option(help="BPE vocabulary size.", rich_help_panel=DATA)]
MinFrequency = Annotated[
    int, typer.Option(help="Word level: rarer words become <unk>.", rich_help_panel=DATA)
]
MaxVocab = Annotated[
    int | None, typer.Option(help="Word level: keep only the most frequent words.", rich_help_panel=DATA)
]
Lowercase = Annotated[bool, typer.Option(help="Word level: fold case.", rich_help_panel=DATA)]

# ---- model

Layers = Annotated[int, typer.Option(help="Stacked LSTM layers.", rich_help_panel=MODEL)]
Hidden = Annotated[int, typer.Option(help="LSTM hidden size.", rich_help_panel=MODEL)]
Embed = Annotated[int, typer.Option(help="Embedding size.", rich_help_panel=MODEL)]
Dropout = Annotated[
    float, typer.Option(help="Dropout between layers and on the output.", rich_help_panel=MODEL)
]
EmbedDropout = Annotated[float, typer.Option(help="Dropout on embeddings.", rich_help_panel=MODEL)]
LockedDropout = Annotated[
    bool,
    typer.Option(
        help="Variational dropout: one mask per sequence, the same at every time step (AWD-LSTM).",
        rich_help_panel=MODEL,
    ),
]
WeightDrop = Annotated[
    float,
    typer.Option(
        help="DropConnect on the hidden-to-hidden weights U, fraction dropped (AWD-LSTM: 0.5).",
        rich_help_panel=MODEL,
    ),
]

# ---- optimisation

Lr = Annotated[float, typer.Option(help="Learning rate.", rich_help_panel=OPTIM)]
WeightDecay = Annotated[float, typer.Option(help="Weight decay.", rich_help_panel=OPTIM)]
Warmup = Annotated[int, typer.Option(help="Warm-up steps.", rich_help_panel=OPTIM)]
Clip = Annotated[float, typer.Option(help="Gradient-norm clipping (0: off).", rich_help_panel=OPTIM)]
OptimizerOption = Annotated[
    Optimizer,
    typer.Option(
        help="adam: Adam; adamw: AdamW (decoupled weight decay); sgd: plain SGD.", rich_help_panel=OPTIM
    ),
]
ScheduleOption = Annotated[
    Schedule,
    typer.Option(
        help="Learning-rate schedule. plateau: halved after each evaluation without a better validation "
        "figure; cosine (down to 5 %) and slanted (ULMFiT's triangle) over the steps, or over --max-time "
        "when that is the only limit; constant.",
        rich_help_panel=OPTIM,
    ),
]
Unfreeze = Annotated[
    int,
    typer.Option(
        help="Gradual unfreezing: the head alone first, one more layer group every N steps (0: off).",
        rich_help_panel=OPTIM,
    ),
]
DiscriminativeLr = Annotated[
    float,
    typer.Option(
        help="Each layer group below the head learns this many times slower (ULMFiT: 2.6).",
        rich_help_panel=OPTIM,
    ),
]
Ema = Annotated[
    float,
    typer.Option(
        help="Evaluate and keep a moving average of the weights with this decay, e.g. 0.999 (0: off).",
        rich_help_panel=OPTIM,
    ),
]

# ---- run


def model_folder(value: str | Path) -> Path:
    """--model/--from as given: a folder, or an embedded model's name (english, shakespeare,
    sentiment) where no folder of that name is here."""
    from lstmtext.pretrained import resolve_model

    if not str(value).strip():
        raise typer.BadParameter("is empty (an unset variable?): name a model folder")
    return resolve_model(value)


# --model of the commands that sample from a language model (generate, copies).
LanguageModelOption = Annotated[
    Path | None,
    typer.Option(
        "--model",
        "-m",
        parser=model_folder,
        help="Checkpoint directory or embedded model (default: english; also shakespeare).",
    ),
]


def output_folder(value: str | Path) -> Path:
    """--out as given: an empty value (an unset shell variable in quotes) would become Path('.'),
    the current folder, so it is refused rather than written into or cleared."""
    if not str(value).strip():  # a default comes as a Path
        raise typer.BadParameter("is empty (an unset variable?): name a folder")
    return Path(value)


Out = Annotated[
    Path,
    typer.Option(
        "--out", "-o", parser=output_folder, help="Run directory (checkpoints, metrics).", rich_help_panel=RUN
    ),
]
MaxSteps = Annotated[int | None, typer.Option(help="Stop after this many steps.", rich_help_panel=RUN)]
MaxTime = Annotated[float | None, typer.Option(help="Stop after this many minutes.", rich_help_panel=RUN)]
RandomState = Annotated[
    int, typer.Option(help="Random seed for weights, dropout and sampling.", rich_help_panel=RUN)
]
Patience = Annotated[
    int,
    typer.Option(
        help="Evaluations without a better validation figure before stopping (0: never).", rich_help_panel=RUN
    ),
]
KeepLast = Annotated[
    int, typer.Option(help="Step checkpoints kept besides the best and the last.", rich_help_panel=RUN)
]
Resume = Annotated[
    bool, typer.Option(help="Continue the run in --out from its last checkpoint.", rich_help_panel=RUN)
]
Overwrite = Annotated[
    bool,
    typer.Option(
        help="Replace the run already in --out (its files are removed first); without it, or "
        "--resume, a folder that holds files is refused.",
        rich_help_panel=RUN,
    ),
]
Device = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.", rich_help_panel=RUN)]
PrecisionOption = Annotated[
    Precision,
    typer.Option(
        help="auto: bf16 where the hardware computes it natively (AVX512-BF16/AMX CPUs, recent "
        "GPUs), else fp32; fp16 (with loss scaling) on CUDA only.",
        rich_help_panel=RUN,
    ),
]
# More threads than this is a typo, not a machine: OpenMP starting 100,000 threads crashes the
# process (a segfault), so a larger value is refused as a usage error (exit 2).
MAX_THREADS = 256
Threads = Annotated[
    int | None,
    typer.Option(
        min=1,
        max=MAX_THREADS,
        help="CPU threads (default: torch's choice, one per core).",
        rich_help_panel=RUN,
    ),
]

# ---- classification (train-classifier)

StartFrom = Annotated[
    Path | None,
    typer.Option(
        "--from",
        parser=model_folder,
        help="Start from this language model's tokenizer, embedding and core (ULMFiT), or a "
        "classifier's (its head too when the labels are the same); its tokenizer and sizes replace "
        "--level, --vocab-size, --min-frequency, --max-vocab, --lowercase, --layers, --hidden and --embed.",
        rich_help_panel=CLASSIFY,
    ),
]
LabelColumn = Annotated[
    str, typer.Option(help="Label column (CSV/TSV header) or JSON key.", rich_help_panel=CLASSIFY)
]
TextColumn = Annotated[
    str, typer.Option(help="Text column (CSV/TSV header) or JSON key.", rich_help_panel=CLASSIFY)
]
MaxTokens = Annotated[
    int,
    typer.Option(
        help="Tokens kept per training text (its first quarter and last three quarters).",
        rich_help_panel=CLASSIFY,
    ),
]
ClassWeights = Annotated[
    bool, typer.Option(help="Weight the loss by inverse class frequency.", rich_help_panel=CLASSIFY)
]
Teacher = Annotated[
    Path | None,
    typer.Option(
        "--teacher",
        parser=model_folder,
        help="A trained classifier of the same classes, or a file of its answers (JSON lines of "
        "text and probabilities), whose probabilities the model also learns (distillation).",
        rich_help_panel=CLASSIFY,
    ),
]
TeacherWeight = Annotated[
    float,
    typer.Option(
        min=0.0,
        max=1.0,
        help="The teacher's share of the loss; the labels have the rest.",
        rich_help_panel=CLASSIFY,
    ),
]
