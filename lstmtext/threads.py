"""CPU threads for inference, chosen per batch shape and always given back.

A library call must leave torch's global thread count as it found it (the CLI runs
in-process in tests and notebooks). And more threads are not faster for the LSTM's
recurrence: each time step is one small matrix product, so a second thread adds a hand-off
per step and, when the other core is busy (a training beside it), waits for it. Measured
with the embedded sentiment classifier (H 256, bf16) on a 2-core Zen 4 with a training
running on the machine: one 16 KB review 0.07 s on one thread, 16.5 s on two; 128 reviews of
1 KB 0.1 s against 2.5 s.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

# Multiply-adds per time step (rows x 4H x H) from which the work of one step is worth
# splitting over threads: batch 512 at H 256, or batch 32 at H 1024.
PARALLEL_STEP_WORK = 1 << 27


def inference_threads(rows: int, hidden_size: int) -> int:
    """Threads for running `rows` sequences together through LSTM layers of `hidden_size`."""
    if rows * 4 * hidden_size * hidden_size < PARALLEL_STEP_WORK:
        return 1
    return torch.get_num_threads()


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block on `threads` CPU threads (None: as they are), then restore the count."""
    previous = torch.get_num_threads()
    if threads is not None and threads != previous:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)
