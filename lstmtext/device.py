"""Where and in what precision a model computes: the device, bf16/fp16 autocast.

Training (train.py, classifier_train.py) and batched inference (classify.py, explain.py) share
these; the precisions each job accepts are defined in config (Precision, ClassifyPrecision).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import torch

from lstmtext.errors import ConfigError


def select_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}") from None


def cpu_has_fast_bf16(cpuinfo: str | None = None) -> bool:
    """True when the CPU multiplies bf16 natively (AVX512-BF16 or AMX-BF16), so autocast pays off.

    Read from the CPU's feature flags (/proc/cpuinfo, or `cpuinfo` as its text), not guessed from
    the model name. Without those instructions oneDNN emulates bf16 and autocast is slower than
    fp32. Other platforms (macOS, ARM) answer False: bf16 there is not measured.
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    for line in cpuinfo.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "flags":
            return not {"avx512_bf16", "amx_bf16"}.isdisjoint(value.split())
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """auto: bf16 where the device computes it natively (a GPU that supports it, a CPU with
    AVX512-BF16 or AMX), else fp32. fp16 (with gradient scaling) only when asked for, on CUDA."""
    if precision != "auto":
        if precision == "fp16" and device.type != "cuda":
            raise ConfigError("fp16 needs a CUDA device; use --precision bf16 on CPU")
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        return "bf16" if cpu_has_fast_bf16() else "fp32"
    return "fp32"


def autocast_context(precision: str, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision == "fp16":
        return torch.autocast(device.type, dtype=torch.float16)
    return contextlib.nullcontext()


def kept_rng(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """torch's global generators (CPU, and `device`'s on CUDA) put back as they were on exit:
    a library call that seeds its run leaves the caller's random state alone."""
    devices = (
        [device.index if device.index is not None else torch.cuda.current_device()]
        if device.type == "cuda"
        else []
    )
    return torch.random.fork_rng(devices=devices)
