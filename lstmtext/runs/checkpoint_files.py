"""The files of a checkpoint folder: their names, the weights in safetensors, and writing the
three a model needs (config.json, tokenizer.json, model.safetensors). Never a pickle.

`checkpoint` reads a whole checkpoint back and checks its parts agree; `resume_files` and
`run_directory` write the rest of a run beside these files.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import nn

from lstmtext.config import RunConfig
from lstmtext.data.tokenizer import TextTokenizer
from lstmtext.errors import CheckpointError
from lstmtext.files import atomic_write_bytes, atomic_write_text

CONFIG = "config.json"
TOKENIZER = "tokenizer.json"
WEIGHTS = "model.safetensors"
OPTIMIZER = "optimizer.safetensors"
TRAINER_STATE = "trainer_state.json"
BEST = "best.json"
METRICS = "metrics.jsonl"
LOCK = ".lock"

MAX_CONFIG_BYTES = 1 << 20  # a config.json is a few KB; a bigger one is not ours
MAX_TOKENIZER_BYTES = 1 << 30


def check_regular(path: Path, max_bytes: int | None = None) -> None:
    """A FIFO or device named config.json would block the reader forever; a huge file would
    be read whole. Both are refused before opening."""
    if not path.is_file():
        raise CheckpointError(f"{path} is not a regular file")
    if max_bytes is not None and path.stat().st_size > max_bytes:
        raise CheckpointError(f"{path} is {path.stat().st_size:,} bytes, more than an lstmtext file holds")


def tensor_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
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
    atomic_write_bytes(path, tensor_bytes(weights_state(model, dtype), {"format": "pt"}))


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


def weight_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes from a safetensors header, without reading any tensor."""
    if not path.exists():
        raise CheckpointError(f"{path} is missing")
    check_regular(path)
    try:
        with safe_open(path, framework="pt") as handle:
            return {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}  # noqa: SIM118 - not a dict
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(
            f"{path} is not a valid safetensors file (truncated or corrupt?): {error}"
        ) from None


def write_model_files(directory: Path, config: RunConfig, tokenizer: TextTokenizer, model: nn.Module) -> None:
    """config.json, tokenizer.json and model.safetensors, each replaced atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_text(directory / CONFIG, config.to_json())
    atomic_write_text(directory / TOKENIZER, tokenizer.to_str())
    save_weights(model, directory / WEIGHTS)
