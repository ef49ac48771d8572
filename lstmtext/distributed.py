"""Several processes, one training: torchrun's environment, the process group, rank-0 helpers.

torchrun (``python -m torch.distributed.run``) starts one process per rank and tells each,
through its environment, who it is: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/MASTER_PORT
(or its own rendezvous store) and TORCHELASTIC_RESTART_COUNT. That environment is this
module's contract, and this is the only library module that reads the environment.

Every collective here is a no-op for a single process, so the training loop calls them
unconditionally. gloo carries CPU tensors, NCCL CUDA tensors.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import Tensor, nn

from lstmtext.errors import ConfigError

# A rank that waits this long for its peers has lost them; torchrun restarts the group anyway.
COLLECTIVE_TIMEOUT = timedelta(minutes=10)


@dataclass(frozen=True)
class Distributed:
    """Who this process is among the ranks of one training; the default is a lone process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    restart_count: int = 0  # torchrun --max-restarts: how many times this group was restarted

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ConfigError(f"rank {self.rank} is not within a world of {self.world_size} processes")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone prints, writes metrics and checkpoints."""
        return self.rank == 0

    # ----- placement -------------------------------------------------------------

    def device_for(self, device: torch.device) -> torch.device:
        """One GPU per rank on a node: `cuda` becomes `cuda:LOCAL_RANK`."""
        if device.type == "cuda" and device.index is None and self.enabled:
            return torch.device("cuda", self.local_rank)
        return device

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """The module to train: DistributedDataParallel over `model` when there are peers.

        DDP averages gradients across ranks during backward and, on construction, copies
        rank 0's parameters to every rank, so all ranks start from the same weights.
        """
        if not self.enabled:
            return model
        device_ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)

    # ----- collectives -------------------------------------------------------------

    def _all_reduce(self, values: Sequence[float], op: dist.ReduceOp.RedOpType) -> list[float]:
        """Each value reduced by `op` over the ranks, in float64 (on the GPU under nccl)."""
        if not self.enabled:
            return [float(v) for v in values]
        on_gpu = dist.get_backend() == "nccl"
        device = torch.device("cuda", torch.cuda.current_device()) if on_gpu else torch.device("cpu")
        tensor = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
        dist.all_reduce(tensor, op=op)
        return tensor.tolist()

    def all_reduce_sum(self, values: Sequence[float]) -> list[float]:
        """The sum over ranks of each value (e.g. validation loss sums and token counts)."""
        return self._all_reduce(values, dist.ReduceOp.SUM)

    def mean(self, value: float) -> float:
        """The mean of one value over ranks (the training loss of the global batch)."""
        return self.all_reduce_sum([value])[0] / self.world_size

    def max_over_ranks(self, values: Sequence[float]) -> list[float]:
        """The largest of each value over the ranks (e.g. the slowest rank's clock)."""
        return self._all_reduce(values, dist.ReduceOp.MAX)

    def gather_rows(self, tensor: Tensor, dim: int) -> Tensor:
        """Every rank's `tensor`, concatenated along `dim` in rank order (same shape on each rank).

        The carried LSTM state h, c (L, B / world, H) of each rank becomes the (L, B, H) state
        of the global batch, which is what a checkpoint records.
        """
        if not self.enabled:
            return tensor
        pieces = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(pieces, tensor.contiguous())
        return torch.cat(pieces, dim=dim)

    def broadcast_text(self, text: str | None) -> str:
        """Rank 0's `text` on every rank (other ranks pass None), e.g. a freshly trained tokenizer."""
        if not self.enabled:
            assert text is not None
            return text
        box: list[str | None] = [text if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        assert box[0] is not None
        return box[0]

    def barrier(self) -> None:
        """Wait for every rank, e.g. until rank 0 has written the checkpoint the others may read."""
        if self.enabled:
            dist.barrier()


# ----- sharding --------------------------------------------------------------------------------


def row_block(num_rows: int, rank: int, world_size: int) -> range:
    """Rank `rank`'s contiguous block of `num_rows` rows; blocks differ by at most one row.

    For the token stream, the B rows of a TokenStream are split this way: each rank reads a
    contiguous, disjoint stretch of the corpus, and the ranks' rows together are exactly
    the rows of a single-process run with batch B, so the two train on the same global batch.
    """
    start = num_rows * rank // world_size
    stop = num_rows * (rank + 1) // world_size
    return range(start, stop)


def local_batch_size(global_batch_size: int, world_size: int) -> int:
    """Rows per rank for a global batch; the global batch must split evenly across ranks."""
    if global_batch_size % world_size:
        raise ConfigError(
            f"batch size {global_batch_size} is the global batch and must be a multiple of the "
            f"{world_size} processes"
        )
    return global_batch_size // world_size


# ----- torchrun ------------------------------------------------------------------------------


def from_environment(env: Mapping[str, str] | None = None) -> Distributed:
    """This process's place as torchrun described it; a lone process when not under torchrun."""
    env = os.environ if env is None else env

    def number(name: str, default: int) -> int:
        value = env.get(name, "")
        try:
            return int(value) if value.strip() else default
        except ValueError:
            raise ConfigError(f"environment variable {name}={value!r} is not a number") from None

    return Distributed(
        rank=number("RANK", 0),
        world_size=number("WORLD_SIZE", 1),
        local_rank=number("LOCAL_RANK", 0),
        restart_count=number("TORCHELASTIC_RESTART_COUNT", 0),
    )


def under_torchrun(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return "TORCHELASTIC_RUN_ID" in env or "WORLD_SIZE" in env


def backend_for(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


@contextlib.contextmanager
def process_group(context: Distributed, device: torch.device) -> Iterator[None]:
    """Join the ranks' process group for the duration of the block (nothing for one process).

    Rendezvous is torchrun's `env://`: MASTER_ADDR and MASTER_PORT, or the store torchrun
    already runs. A group the caller has already started is used and left alone.
    """
    if not context.enabled or dist.is_initialized():
        yield
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    store, _, _ = next(
        dist.rendezvous("env://", context.rank, context.world_size, timeout=COLLECTIVE_TIMEOUT)
    )
    # torchrun keeps one store for every restart of a run, and the ranks of an earlier attempt
    # left their addresses in it: a new rank could read a dead peer's and fail to connect.
    # Each attempt gets its own keys.
    store = dist.PrefixStore(f"lstmtext/attempt-{context.restart_count}/", store)
    dist.init_process_group(
        backend_for(device),
        store=store,
        rank=context.rank,
        world_size=context.world_size,
        timeout=COLLECTIVE_TIMEOUT,
    )
    try:
        yield
    finally:
        dist.destroy_process_group()


def torchrun_command(nproc: int, args: Sequence[str], *, max_restarts: int = 0) -> list[str]:
    """The command that runs `lstmtext ARGS` on `nproc` local processes under torchrun.

    --standalone: a single node, the rendezvous on a free localhost port.
    """
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        f"--max-restarts={max_restarts}",
        "-m",
        "lstmtext",
        *args,
    ]
