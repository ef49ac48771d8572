"""Configuration as plain frozen dataclasses, validated on construction, saved as JSON.

Configs are built once at the CLI edge (or by a Python caller) and passed down; nothing
below reads argv or the environment.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from lstmtext.errors import CheckpointError, ConfigError

# Bumped when config.json changes in a way older code cannot read. 2: the classifier's options
# (`classifier`) and the fine-tuning options of `train`; version 1 files still load.
FORMAT_VERSION = 2

TASKS = ("lm", "classify")


class Level(str, Enum):
    char = "char"
    word = "word"
    bpe = "bpe"


class Optimizer(str, Enum):
    adam = "adam"
    adamw = "adamw"
    sgd = "sgd"


class Schedule(str, Enum):
    """plateau: decay on a stalled validation; cosine; slanted: ULMFiT's slanted triangle; constant."""

    plateau = "plateau"
    cosine = "cosine"
    slanted = "slanted"
    constant = "constant"


class Precision(str, Enum):
    """What training computes in (autocast). auto: bf16 where the hardware computes it natively,
    else fp32; fp16 on CUDA only, with a gradient scaler."""

    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


class ClassifyPrecision(str, Enum):
    """What batched classification computes in (autocast); auto as for training."""

    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"


class StepPrecision(str, Enum):
    """The matrices of the token-by-token inference step (generate); bf16 on CPUs with oneDNN bf16."""

    fp32 = "fp32"
    bf16 = "bf16"


# The one definition of each set: the library checks these, the CLI offers the enums above.
LEVELS = tuple(level.value for level in Level)
OPTIMIZERS = tuple(o.value for o in Optimizer)
SCHEDULES = tuple(schedule.value for schedule in Schedule)
PRECISIONS = tuple(p.value for p in Precision)
STEP_PRECISIONS = tuple(p.value for p in StepPrecision)

# Upper bounds, so that an untrusted config.json cannot make loading build a model for minutes
# or allocate gigabytes before its weights are even read.
MAX_LAYERS = 256
MAX_WIDTH = 1 << 16  # embedding and hidden size
MAX_VOCAB = 1 << 24
MAX_CLASSES = 10_000
MAX_LABEL_CHARS = 200


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


@dataclass(frozen=True)
class TokenizerConfig:
    level: str = "char"
    vocab_size: int = 8000  # bpe: merges stop at this size
    min_frequency: int = 1  # word: rarer words become <unk>
    max_vocab: int | None = None  # word: keep the most frequent words only
    lowercase: bool = False  # word: fold case before splitting

    def __post_init__(self) -> None:
        _require(self.level in LEVELS, f"level must be one of {', '.join(LEVELS)}, not {self.level!r}")
        _require(self.vocab_size >= 260, f"vocab size must be at least 260, not {self.vocab_size}")
        _require(self.min_frequency >= 1, f"min frequency must be at least 1, not {self.min_frequency}")
        _require(
            self.max_vocab is None or self.max_vocab >= 4,
            f"max vocab must be at least 4, not {self.max_vocab}",
        )


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    embedding_dim: int = 128
    hidden_size: int = 512
    num_layers: int = 2
    dropout: float = 0.2  # between LSTM layers and on the top layer's output
    embedding_dropout: float = 0.0  # on embedding vectors
    locked_dropout: bool = False  # one dropout mask per sequence, shared by its time steps
    weight_drop: float = 0.0  # DropConnect on the hidden-to-hidden matrices (AWD-LSTM)
    tie_weights: bool = False  # LM head shares the embedding matrix (needs embedding_dim == hidden_size)
    # > 0: two-level softmax, this many most frequent tokens first (lstmtext.core.softmax)
    softmax_cutoff: int = 0
    task: str = "lm"
    num_classes: int = 0  # classify only

    def __post_init__(self) -> None:
        _require(
            1 <= self.vocab_size <= MAX_VOCAB, f"vocab size must be in 1..{MAX_VOCAB}, not {self.vocab_size}"
        )
        _require(
            1 <= self.embedding_dim <= MAX_WIDTH,
            f"embedding size must be in 1..{MAX_WIDTH}, not {self.embedding_dim}",
        )
        _require(
            1 <= self.hidden_size <= MAX_WIDTH,
            f"hidden size must be in 1..{MAX_WIDTH}, not {self.hidden_size}",
        )
        _require(
            1 <= self.num_layers <= MAX_LAYERS, f"layers must be in 1..{MAX_LAYERS}, not {self.num_layers}"
        )
        _require(
            0 <= self.num_classes <= MAX_CLASSES,
            f"number of classes must be in 0..{MAX_CLASSES}, not {self.num_classes}",
        )
        _require(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), not {self.dropout}")
        _require(
            0.0 <= self.embedding_dropout < 1.0,
            f"embedding dropout must be in [0, 1), not {self.embedding_dropout}",
        )
        _require(0.0 <= self.weight_drop < 1.0, f"weight drop must be in [0, 1), not {self.weight_drop}")
        _require(
            0 <= self.softmax_cutoff < self.vocab_size,
            f"softmax cutoff must be 0 (full softmax) or below the vocabulary size "
            f"{self.vocab_size}, not {self.softmax_cutoff}",
        )
        _require(self.task in TASKS, f"task must be one of {', '.join(TASKS)}, not {self.task!r}")
        _require(
            not self.tie_weights or self.embedding_dim == self.hidden_size,
            f"tied weights need embedding size == hidden size ({self.embedding_dim} != {self.hidden_size})",
        )
        _require(
            self.task != "classify" or self.num_classes >= 2,
            f"a classifier needs at least 2 classes, not {self.num_classes}",
        )


@dataclass(frozen=True)
class ModelShape:
    """The model options a user picks: ModelConfig less what the data and the task decide (the
    vocabulary size, the task, the classes), with ModelConfig's defaults."""

    embedding_dim: int = ModelConfig.embedding_dim
    hidden_size: int = ModelConfig.hidden_size
    num_layers: int = ModelConfig.num_layers
    dropout: float = ModelConfig.dropout
    embedding_dropout: float = ModelConfig.embedding_dropout
    locked_dropout: bool = ModelConfig.locked_dropout
    weight_drop: float = ModelConfig.weight_drop
    tie_weights: bool = ModelConfig.tie_weights
    softmax_cutoff: int = ModelConfig.softmax_cutoff

    def model_config(self, vocab_size: int) -> ModelConfig:
        return ModelConfig(vocab_size=vocab_size, **dataclasses.asdict(self))


@dataclass(frozen=True)
class TrainConfig:
    seq_len: int = 100
    vary_seq_len: bool = False  # AWD-LSTM's variable BPTT: each window's length drawn around seq_len
    batch_size: int = 64
    lr: float = 2e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    epochs: float | None = None
    max_steps: int | None = None
    max_time: float | None = None  # seconds
    clip: float = 5.0
    val_fraction: float = 0.1
    eval_every: int = 200
    eval_batches: int | None = None  # None: the whole validation stream
    patience: int | None = 5  # evaluations without improvement before stopping
    lr_schedule: str = "plateau"  # one of SCHEDULES
    lr_decay: float = 0.5  # plateau: factor applied when validation stalls
    warmup_steps: int = 0
    ema: float = 0.0  # decay of the weight average that is evaluated and kept (0: no average)
    activation_penalty: float = 0.0  # AR: weight of the mean squared top-layer output (AWD-LSTM: 2)
    temporal_penalty: float = 0.0  # TAR: weight of its mean squared change per step (AWD-LSTM: 1)
    keep_last: int = 2  # step checkpoints kept besides best/ and last/
    # ULMFiT's fine-tuning, for either task. Layer groups from the bottom: embedding, each LSTM
    # layer, the head. Each group learns discriminative_lr times slower than the one above it.
    discriminative_lr: float = 1.0
    unfreeze_every: int = 0  # gradual unfreezing: steps per stage, top group first (0: all train)
    random_state: int = 1337
    device: str = "auto"
    precision: str = "fp32"
    threads: int | None = None
    start_from: str | None = None  # language model: fine-tuned from this model (train --from)
    added_tokens: int = 0  # new tokens its vocabulary grew by, to cover the corpus

    def __post_init__(self) -> None:
        _require(self.seq_len >= 1, f"seq len must be positive, not {self.seq_len}")
        _require(self.batch_size >= 1, f"batch size must be positive, not {self.batch_size}")
        _require(self.lr > 0, f"learning rate must be positive, not {self.lr}")
        _require(
            self.optimizer in OPTIMIZERS,
            f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {self.optimizer!r}",
        )
        _require(self.weight_decay >= 0, f"weight decay must be >= 0, not {self.weight_decay}")
        _require(self.epochs is None or self.epochs > 0, f"epochs must be positive, not {self.epochs}")
        _require(
            self.max_steps is None or self.max_steps >= 1, f"max steps must be positive, not {self.max_steps}"
        )
        _require(
            self.max_time is None or self.max_time > 0, f"max time must be positive, not {self.max_time}"
        )
        _require(self.clip >= 0, f"clip must be >= 0, not {self.clip}")
        _require(0.0 <= self.val_fraction < 1.0, f"val fraction must be in [0, 1), not {self.val_fraction}")
        _require(self.eval_every >= 1, f"eval every must be positive, not {self.eval_every}")
        _require(
            self.patience is None or self.patience >= 1, f"patience must be positive, not {self.patience}"
        )
        _require(
            self.lr_schedule in SCHEDULES,
            f"lr schedule must be one of {', '.join(SCHEDULES)}, not {self.lr_schedule!r}",
        )
        _require(0.0 < self.lr_decay <= 1.0, f"lr decay must be in (0, 1], not {self.lr_decay}")
        _require(self.warmup_steps >= 0, f"warmup steps must be >= 0, not {self.warmup_steps}")
        _require(0.0 <= self.ema < 1.0, f"ema decay must be in [0, 1), not {self.ema}")
        _require(self.activation_penalty >= 0, f"AR must be >= 0, not {self.activation_penalty}")
        _require(self.temporal_penalty >= 0, f"TAR must be >= 0, not {self.temporal_penalty}")
        _require(self.keep_last >= 0, f"keep last must be >= 0, not {self.keep_last}")
        _require(
            1.0 <= self.discriminative_lr <= 1e3,
            f"discriminative lr factor must be in [1, 1000], not {self.discriminative_lr}",
        )
        _require(self.unfreeze_every >= 0, f"unfreeze every must be >= 0, not {self.unfreeze_every}")
        _require(
            self.precision in PRECISIONS,
            f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}",
        )
        _require(self.threads is None or self.threads >= 1, f"threads must be positive, not {self.threads}")


@dataclass(frozen=True)
class ClassifierOptions:
    """What classifier training adds to the training options; config.json keeps them."""

    start_from: str | None = None  # LM or classifier whose tokenizer, embedding and core to start from
    label_column: str = "label"  # header columns (or JSON keys) of labelled files
    text_column: str = "text"
    val_sources: tuple[str, ...] = ()  # labelled validation data instead of a split of the training data
    max_tokens: int = 512  # longer texts keep their first quarter and last three quarters in training
    class_weights: bool = False  # weight the loss by inverse class frequency
    teacher: str | None = None  # classifier whose probabilities the model also learns (distillation)
    teacher_weight: float = 0.7  # the teacher's share of the loss; the labels have the rest

    def __post_init__(self) -> None:
        _require(
            0.0 <= self.teacher_weight <= 1.0, f"teacher weight must be in 0..1, not {self.teacher_weight}"
        )
        _require(
            1 <= self.max_tokens <= 1 << 24, f"max tokens must be in 1..{1 << 24}, not {self.max_tokens}"
        )
        _require(
            bool(self.label_column) and bool(self.text_column) and self.label_column != self.text_column,
            "label and text columns must be two different, non-empty names",
        )


@dataclass(frozen=True)
class RunConfig:
    """Everything config.json records about a checkpoint."""

    tokenizer: TokenizerConfig
    model: ModelConfig
    train: TrainConfig = field(default_factory=TrainConfig)
    labels: tuple[str, ...] = ()  # classify: class names in head order
    classifier: ClassifierOptions | None = None  # classify: how it was trained
    # classify: logits are divided by it before the softmax (temperature scaling, Guo et al.
    # 2017). Older readers ignore the key and older checkpoints lack it (1.0), so no version bump.
    temperature: float = 1.0
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        version = data.get("format_version")
        if version is None:
            raise CheckpointError("config.json has no format_version: not an lstmtext checkpoint")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise CheckpointError(f"config.json: format_version must be a whole number >= 1, not {version!r}")
        if version > FORMAT_VERSION:
            raise CheckpointError(
                f"checkpoint format version {version} is newer than this lstmtext "
                f"supports ({FORMAT_VERSION}); "
                "upgrade lstmtext"
            )
        try:
            return cls(
                tokenizer=_build(TokenizerConfig, data["tokenizer"]),
                model=_build(ModelConfig, data["model"]),
                train=_build(TrainConfig, data.get("train", {})),
                labels=_labels(data.get("labels", [])),
                classifier=None
                if data.get("classifier") is None
                else _build(ClassifierOptions, data["classifier"]),
                temperature=_temperature(data.get("temperature", 1.0)),
                format_version=version,
            )
        except (KeyError, TypeError) as error:
            raise CheckpointError(f"config.json is not a valid lstmtext config: {error}") from None
        except ConfigError as error:
            raise CheckpointError(f"config.json holds an invalid value: {error}") from None

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise CheckpointError(f"config.json is not valid JSON ({error})") from None
        except RecursionError:
            raise CheckpointError("config.json is nested too deeply to be an lstmtext config") from None
        except ValueError as error:  # e.g. an integer of more digits than Python converts
            raise CheckpointError(f"config.json is not valid JSON ({error})") from None
        if not isinstance(data, dict):
            raise CheckpointError("config.json is not a JSON object")
        return cls.from_dict(data)


def _temperature(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
        raise ConfigError(f"temperature must be a positive number, not {value!r}")
    return float(value)


def _labels(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > MAX_CLASSES:
        raise ConfigError(f"labels must be a list of at most {MAX_CLASSES} strings")
    for i, label in enumerate(value):  # distinct: --json's probabilities are keyed by label
        if not isinstance(label, str) or not 0 < len(label) <= MAX_LABEL_CHARS or label in value[:i]:
            twice = f"; {label!r} is given twice" if label in value[:i] else ""
            raise ConfigError(f"labels must be distinct strings of 1 to {MAX_LABEL_CHARS} characters{twice}")
    return tuple(value)


def _build(kind: type, values: Any) -> Any:
    if not isinstance(values, dict):
        raise TypeError(f"{kind.__name__} must be an object")
    fields = {f.name: f for f in dataclasses.fields(kind)}
    # Unknown keys come from newer minor versions; dropping them keeps old readers working.
    kept = {k: v for k, v in values.items() if k in fields}
    for name, value in kept.items():
        _check_type(f"{kind.__name__}.{name}", str(fields[name].type), value)
        if isinstance(value, list):
            kept[name] = tuple(value)
    return kind(**kept)


def _check_type(name: str, annotation: str, value: Any) -> None:
    """The JSON type a field's annotation asks for ("int", "float | None", ...): a float hidden
    size or a string dropout is refused here, not deep inside torch."""
    kinds = {part.strip() for part in annotation.split("|")}
    if value is None:
        ok = "None" in kinds
    elif isinstance(value, bool):
        ok = "bool" in kinds
    elif isinstance(value, int):
        ok = bool(kinds & {"int", "float"})
    elif isinstance(value, float):
        ok = "float" in kinds
    elif isinstance(value, list):
        ok = "tuple[str, ...]" in kinds and len(value) <= 1000 and all(isinstance(v, str) for v in value)
    else:
        ok = isinstance(value, str) and "str" in kinds
    if not ok:
        raise ConfigError(f"{name} must be of type {annotation}, not {type(value).__name__} {value!r:.40}")
