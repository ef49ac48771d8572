"""CPU threads for inference, chosen per batch shape and always given back.

A library call must leave torch's global thread count as it found it (the CLI runs
in-process in tests and notebooks). And more threads are not faster for the LSTM's
recurrence on small work: each time step is one matrix product, so a second thread adds a
hand-off per step and, when the other core is busy, waits for it. One review, or a few,
runs on one thread; a batch of 64 or more reviews at H 256 is worth both cores on an idle
machine (`python -m benchmarks.classification`: BENCHMARKS.md). A pass forward and back (the
gradients of lstmtext.classifier.explain) counts three times the work of the forward alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

# Multiply-adds per time step (rows x 4H x H) from which the work of one step is worth
# splitting over threads: batch 64 at H 256, or batch 4 at H 1024.
PARALLEL_STEP_WORK = 1 << 24
# The backward pass multiplies each step's gate gradients by both weight matrices (the
# gradients of the input and of the previous state) and the oneDNN kernel accumulates the
# weight gradients as well: with the forward, about three forwards' multiply-adds.
BACKWARD_WORK = 3


def inference_threads(rows: int, hidden_size: int, *, backward: bool = False) -> int:
    """Threads for running `rows` sequences together through LSTM layers of `hidden_size`,
    forward only or (`backward`) forward and back."""
    work = rows * 4 * hidden_size * hidden_size * (BACKWARD_WORK if backward else 1)
    if work < PARALLEL_STEP_WORK:
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
