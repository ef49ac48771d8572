"""Checkpoint directories: JSON and safetensors only, every write atomic, never a pickle.

A run directory (`--out`) is itself a checkpoint of the best model, so `--model RUN`
works, and keeps the resume state of the latest step beside it:

    RUN/
      config.json            model, tokenizer and training config, format version
      tokenizer.json         HF tokenizers JSON
      model.safetensors      weights of the best model so far (by validation loss)
      best.json              step and validation loss of those weights
      metrics.jsonl          one JSON object per log line / evaluation
      checkpoints/last/      full resume state of the latest save
      checkpoints/step-N/    the latest `keep_last` step saves
    each checkpoint folder: config.json, tokenizer.json, model.safetensors,
      optimizer.safetensors (optimizer moments, carried LSTM state), trainer_state.json
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import nn

from lstmtext.config import ModelConfig, RunConfig
from lstmtext.errors import CheckpointError, OutputLocked, TokenizerError
from lstmtext.files import atomic_write_bytes, atomic_write_text, os_error_text
from lstmtext.model import Classifier, LanguageModel, build_model
from lstmtext.tokenizer import TextTokenizer

CONFIG = "config.json"
TOKENIZER = "tokenizer.json"
WEIGHTS = "model.safetensors"
OPTIMIZER = "optimizer.safetensors"
TRAINER_STATE = "trainer_state.json"
BEST = "best.json"
METRICS = "metrics.jsonl"
LOCK = ".lock"


def append_metrics(directory: Path, record: dict[str, Any]) -> None:
    """Append one record to metrics.jsonl as it happens, so `tail -f` follows a run.

    Checkpoints rewrite the whole file atomically from the trainer's history; between them a
    crash can at worst tear the last appended line, which `read_metrics` skips.
    """
    with open(directory / METRICS, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def read_metrics(directory: Path) -> list[dict[str, Any]]:
    """The records of metrics.jsonl; a line torn by a crash is left out."""
    path = directory / METRICS
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            record = json.loads(line)
            if isinstance(record, dict):
                records.append(record)
    return records


def save_error(out_dir: Path, error: OSError) -> CheckpointError:
    """One true line for a save that failed (full disk, read-only folder): why, and what of
    the run is still on disk, read from the disk rather than assumed."""
    last = resume_directory(out_dir / "checkpoints" / "last")
    kept = "nothing of this run was saved yet"
    step = _saved_step(last / TRAINER_STATE)
    best = _saved_step(out_dir / BEST)
    if step is not None:
        kept = f"the checkpoint of step {step} is intact (free space, then continue with --resume)"
    elif best is not None:
        kept = f"the best model so far (step {best}) is intact"
    return CheckpointError(f"cannot save a checkpoint in {out_dir}: {os_error_text(error)}; {kept}")


def _saved_step(path: Path) -> int | None:
    try:
        step = json.loads(path.read_text(encoding="utf-8")).get("step")
    except (OSError, ValueError, AttributeError):
        return None
    return step if isinstance(step, int) else None


def _tensor_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    from safetensors.torch import save

    return save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, metadata=metadata)


def weights_state(model: nn.Module, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """state_dict without the second name of tied tensors (safetensors refuses shared storage)."""
    seen: set[int] = set()
    state: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict().items():
        key = tensor.data_ptr()
        if key in seen:
            continue
        seen.add(key)
        state[name] = tensor.to(dtype) if dtype is not None and tensor.is_floating_point() else tensor
    return state


def save_weights(model: nn.Module, path: Path, dtype: torch.dtype | None = None) -> None:
    atomic_write_bytes(path, _tensor_bytes(weights_state(model, dtype), {"format": "pt"}))


def load_weights(model: nn.Module, path: Path) -> None:
    """Load safetensors weights into `model`, casting to its dtype, on any device."""
    try:
        state = load_file(path, device="cpu")
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing") from None
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(
            f"{path} is not a valid safetensors file (truncated or corrupt?): {error}"
        ) from None
    expected = model.state_dict()
    tied = {name for name in expected if name not in state and name == "head.weight"}
    missing = set(expected) - set(state) - tied
    unexpected = set(state) - set(expected)
    if missing or unexpected:
        raise CheckpointError(
            f"{path} does not match the model in config.json "
            f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})"
        )
    for name, tensor in state.items():
        if tensor.shape != expected[name].shape:
            raise CheckpointError(
                f"{path}: {name} has shape {tuple(tensor.shape)}, "
                f"config.json implies {tuple(expected[name].shape)}"
            )
    model.load_state_dict(state, strict=False)
    two_level = getattr(model, "two_level", None)
    if two_level is not None:
        try:
            two_level.check()
        except ValueError as error:
            raise CheckpointError(f"{path}: {error}") from None


@dataclass
class Checkpoint:
    config: RunConfig
    tokenizer: TextTokenizer
    model: LanguageModel | Classifier
    path: Path


MAX_CONFIG_BYTES = 1 << 20  # a config.json is a few KB; a bigger one is not ours
MAX_TOKENIZER_BYTES = 1 << 30


def _check_regular(path: Path, max_bytes: int | None = None) -> None:
    """A FIFO or device named config.json would block the reader forever; a huge file would
    be read whole. Both are refused before opening."""
    if not path.is_file():
        raise CheckpointError(f"{path} is not a regular file")
    if max_bytes is not None and path.stat().st_size > max_bytes:
        raise CheckpointError(f"{path} is {path.stat().st_size:,} bytes, more than an lstmtext file holds")


def weight_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes from a safetensors header, without reading any tensor."""
    if not path.exists():
        raise CheckpointError(f"{path} is missing")
    _check_regular(path)
    try:
        with safe_open(path, framework="pt") as handle:
            return {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}  # noqa: SIM118 - not a dict
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(
            f"{path} is not a valid safetensors file (truncated or corrupt?): {error}"
        ) from None


def check_weight_shapes(model_config: ModelConfig, path: Path) -> None:
    """The sizes in config.json that decide what building the model allocates (vocabulary,
    embedding, hidden size, layers) against the weights file's header, before anything is
    built: an edited config (10^4 layers, hidden size 20000) must not make loading hang or
    allocate gigabytes first. Every other tensor is compared when the weights are loaded
    into the built model (`load_weights`)."""
    found = weight_shapes(path)
    layers = sum(1 for name in found if name.startswith("core.lstm.weight_hh_l"))
    if layers != model_config.num_layers:
        raise CheckpointError(
            f"{path} does not match the model in config.json "
            f"({layers} LSTM layers, config.json says {model_config.num_layers})"
        )
    hidden = model_config.hidden_size
    implied = {"core.embedding.weight": (model_config.vocab_size, model_config.embedding_dim)}
    implied |= {f"core.lstm.weight_hh_l{k}": (4 * hidden, hidden) for k in range(layers)}
    for name, shape in implied.items():
        if found.get(name) != shape:
            raise CheckpointError(f"{path}: {name} has shape {found.get(name)}, config.json implies {shape}")


def read_config(directory: Path) -> RunConfig:
    directory = Path(directory)
    if not directory.exists():
        raise CheckpointError(f"model directory {directory} does not exist")
    if not directory.is_dir():
        raise CheckpointError(f"{directory} is not a directory (a checkpoint is a folder with {CONFIG})")
    path = directory / CONFIG
    if not path.exists():
        raise CheckpointError(f"{directory} is not a checkpoint: {CONFIG} is missing")
    _check_regular(path, MAX_CONFIG_BYTES)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CheckpointError(f"{directory} is not a checkpoint: {CONFIG} is missing") from None
    except (OSError, UnicodeDecodeError) as error:
        raise CheckpointError(f"cannot read {path}: {error}") from None
    return RunConfig.from_json(text)


def load_checkpoint(directory: Path | str, *, task: str | None = None, device: str = "cpu") -> Checkpoint:
    """Read config, tokenizer and weights; check they agree. `task` = the head the caller needs."""
    directory = Path(directory)
    config = read_config(directory)
    if task is not None and config.model.task != task:
        wanted = {"lm": "a language model", "classify": "a classifier"}
        raise CheckpointError(
            f"{directory} holds {wanted[config.model.task]}, but this command needs {wanted[task]}"
        )
    if not (directory / TOKENIZER).exists():
        raise CheckpointError(f"{directory} is not a complete checkpoint: {TOKENIZER} is missing")
    _check_regular(directory / TOKENIZER, MAX_TOKENIZER_BYTES)
    try:
        tokenizer = TextTokenizer.load(directory / TOKENIZER)
    except TokenizerError as error:
        raise CheckpointError(f"{directory}: {error}") from None
    if tokenizer.vocab_size != config.model.vocab_size:
        raise CheckpointError(
            f"{directory}: tokenizer has {tokenizer.vocab_size} tokens but the model expects "
            f"{config.model.vocab_size}"
        )
    check_weight_shapes(config.model, directory / WEIGHTS)
    model = build_model(config.model)
    load_weights(model, directory / WEIGHTS)
    model.to(device)
    model.eval()
    return Checkpoint(config=config, tokenizer=tokenizer, model=model, path=directory)


def write_model_files(directory: Path, config: RunConfig, tokenizer: TextTokenizer, model: nn.Module) -> None:
    """config.json, tokenizer.json and model.safetensors, each replaced atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_text(directory / CONFIG, config.to_json())
    atomic_write_text(directory / TOKENIZER, tokenizer.to_str())
    save_weights(model, directory / WEIGHTS)


def optimizer_tensors(
    optimizer: torch.optim.Optimizer,
) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """Split an optimizer state_dict into flat tensors and JSON-able param groups."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for index, values in state["state"].items():
        for name, value in values.items():
            tensor = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            tensors[f"optimizer.{index}.{name}"] = tensor
    return tensors, state["param_groups"]


def restore_optimizer(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], param_groups: list[dict[str, Any]]
) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        if not key.startswith("optimizer."):
            continue
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = tensor
    optimizer.load_state_dict({"state": state, "param_groups": param_groups})


def write_resume_checkpoint(
    directory: Path,
    *,
    config: RunConfig,
    tokenizer: TextTokenizer,
    model: nn.Module,
    extra_tensors: dict[str, torch.Tensor],
    trainer_state: dict[str, Any],
) -> None:
    """Write a complete checkpoint folder next to `directory`, then swap it in.

    The old folder stays whole until the new one is complete, so a crash or a full disk
    mid-write leaves the previous checkpoint intact.
    """
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    staging.chmod(0o755 & ~_umask())  # mkdtemp makes private folders; a checkpoint is an ordinary one
    try:
        write_model_files(staging, config, tokenizer, model)
        atomic_write_bytes(staging / OPTIMIZER, _tensor_bytes(extra_tensors))
        atomic_write_text(staging / TRAINER_STATE, json.dumps(trainer_state, indent=1, sort_keys=True))
        retired = None
        if directory.exists():
            retired = directory.with_name(f".{directory.name}.old")
            if retired.exists():
                shutil.rmtree(retired)
            os.replace(directory, retired)
        os.replace(staging, directory)
        if retired is not None:
            shutil.rmtree(retired, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def resume_directory(directory: Path) -> Path:
    """`directory`, or its retired copy where a crash between the two renames of
    write_resume_checkpoint left only that."""
    retired = directory.with_name(f".{directory.name}.old")
    return retired if not directory.exists() and retired.exists() else directory


def read_resume_checkpoint(directory: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Extra tensors and trainer state of a resume checkpoint (weights: load_weights on
    resume_directory(directory) / WEIGHTS)."""
    directory = resume_directory(directory)
    for name in (OPTIMIZER, TRAINER_STATE):
        if not (directory / name).exists():
            raise CheckpointError(f"cannot resume: {directory / name} is missing")
    try:
        tensors = load_file(directory / OPTIMIZER, device="cpu")
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(
            f"cannot resume: {directory / OPTIMIZER} is not a valid safetensors file "
            f"(truncated or corrupt?): {error}"
        ) from None
    try:
        state = json.loads((directory / TRAINER_STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CheckpointError(
            f"cannot resume: {directory / TRAINER_STATE} is not valid JSON ({error})"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"cannot resume from {directory}: {TRAINER_STATE} is not an object")
    return tensors, state


class OutputLock:
    """A lock file in the run directory so two trainings never write into one."""

    # An empty lock may be one another writer is filling (earlier lstmtext created the file,
    # then wrote its PID); only after this long is it taken for the leftover of a crash.
    EMPTY_GRACE_SECONDS = 10.0

    def __init__(self, directory: Path) -> None:
        self.path = directory / LOCK
        self.held = False

    def __enter__(self) -> OutputLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            if self._create():
                self.held = True
                return self
            if not self._stale():
                raise OutputLocked(
                    f"{self.path.parent} is in use by another training (lock {self.path}); "
                    "choose another --out or wait for it to finish"
                )
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        raise OutputLocked(f"cannot take the lock {self.path}")

    def _create(self) -> bool:
        """Make the lock appear already holding our PID: written to a temp file, then linked
        into place (link fails if the lock exists). A lock created empty and filled after would
        be seen empty, taken for stale, and shared by two runs."""
        temp = self.path.with_name(f"{LOCK}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        temp.write_text(str(os.getpid()))
        try:
            os.link(temp, self.path)
            return True
        except FileExistsError:
            return False
        except OSError:  # a file system without hard links: exclusive create, then fill
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "w") as handle:
                handle.write(str(os.getpid()))
            return True
        finally:
            with contextlib.suppress(OSError):
                temp.unlink()

    def _stale(self) -> bool:
        try:
            text = self.path.read_text().strip()
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return True  # released meanwhile: try again
        except OSError:
            return False
        if not text:
            return age > self.EMPTY_GRACE_SECONDS
        try:
            pid = int(text)
        except ValueError:
            return True
        if pid <= 0 or pid == os.getpid():
            return pid <= 0
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def __exit__(self, *exc: object) -> None:
        if self.held:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            self.held = False
