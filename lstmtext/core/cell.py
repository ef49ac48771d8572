"""The LSTM, gate by gate.

This is the readable implementation: it runs on the very parameters of the fused
`torch.nn.LSTM` (same tensors, same layout) and computes the same numbers, one time
step and one gate at a time. The fused path is what trains; this one is what you read,
test against, and inspect (`lstmtext inspect` records every gate from here).

PyTorch stores each layer's four gate blocks stacked in the order input, forget,
candidate ("g"), output: weight_ih (4H, I), weight_hh (4H, H), bias_ih and bias_hh (4H,).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass
class GateTrace:
    """Every intermediate of one layer over a sequence, each (B, T, H)."""

    forget_gate: Tensor
    input_gate: Tensor
    candidate: Tensor
    cell: Tensor
    output_gate: Tensor
    hidden: Tensor


def lstm_cell(
    x: Tensor,
    hidden: Tensor,
    cell: Tensor,
    weight_ih: Tensor,
    weight_hh: Tensor,
    bias_ih: Tensor,
    bias_hh: Tensor,
) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """One LSTM step.

        f_t  = sigmoid(W_f x_t + U_f h_{t-1} + b_f)        forget gate
        i_t  = sigmoid(W_i x_t + U_i h_{t-1} + b_i)        input gate
        C~_t = tanh(W_c x_t + U_c h_{t-1} + b_c)           candidate
        C_t  = f_t * C_{t-1} + i_t * C~_t                  cell update
        o_t  = sigmoid(W_o x_t + U_o h_{t-1} + b_o)        output gate
        h_t  = o_t * tanh(C_t)                             hidden state

    x (B, I), hidden and cell (B, H); weights in nn.LSTM layout. Returns the new hidden
    and cell states and the gates by name.
    """
    w_i, w_f, w_c, w_o = weight_ih.chunk(4, dim=0)
    u_i, u_f, u_c, u_o = weight_hh.chunk(4, dim=0)
    b_i, b_f, b_c, b_o = (bias_ih + bias_hh).chunk(4, dim=0)

    forget_gate = torch.sigmoid(x @ w_f.T + hidden @ u_f.T + b_f)
    input_gate = torch.sigmoid(x @ w_i.T + hidden @ u_i.T + b_i)
    candidate = torch.tanh(x @ w_c.T + hidden @ u_c.T + b_c)
    new_cell = forget_gate * cell + input_gate * candidate
    output_gate = torch.sigmoid(x @ w_o.T + hidden @ u_o.T + b_o)
    new_hidden = output_gate * torch.tanh(new_cell)

    gates = {
        "forget_gate": forget_gate,
        "input_gate": input_gate,
        "candidate": candidate,
        "cell": new_cell,
        "output_gate": output_gate,
        "hidden": new_hidden,
    }
    return new_hidden, new_cell, gates


def layer_weights(lstm: nn.LSTM, layer: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The four parameter tensors of one layer of a fused nn.LSTM."""
    return (
        getattr(lstm, f"weight_ih_l{layer}"),
        getattr(lstm, f"weight_hh_l{layer}"),
        getattr(lstm, f"bias_ih_l{layer}"),
        getattr(lstm, f"bias_hh_l{layer}"),
    )


def run_layer(
    inputs: Tensor,
    hidden: Tensor,
    cell: Tensor,
    weights: tuple[Tensor, Tensor, Tensor, Tensor],
    *,
    trace: bool = False,
) -> tuple[Tensor, tuple[Tensor, Tensor], GateTrace | None]:
    """One LSTM layer over a sequence, step by step.

    inputs (B, T, I); hidden and cell (B, H); weights (weight_ih, weight_hh, bias_ih,
    bias_hh) in nn.LSTM layout. Returns the outputs (B, T, H), the final (h, c) and, when
    `trace`, every gate of every step.
    """
    outputs, recorded = [], []
    for t in range(inputs.shape[1]):
        hidden, cell, gates = lstm_cell(inputs[:, t], hidden, cell, *weights)
        outputs.append(hidden)
        if trace:
            recorded.append(gates)
    traced = None
    if trace:
        traced = GateTrace(**{name: torch.stack([g[name] for g in recorded], dim=1) for name in recorded[0]})
    return torch.stack(outputs, dim=1), (hidden, cell), traced


def run_lstm(
    lstm: nn.LSTM,
    inputs: Tensor,
    state: tuple[Tensor, Tensor],
    *,
    dropout: float = 0.0,
    training: bool = False,
    trace: bool = False,
) -> tuple[Tensor, tuple[Tensor, Tensor], list[GateTrace]]:
    """Stacked LSTM, step by step, on the parameters of `lstm` (batch_first).

    inputs (B, T, I); state = (h, c), each (L, B, H). Returns the top layer's outputs
    (B, T, H), the final state and, when `trace`, one GateTrace per layer. Dropout
    between layers matches nn.LSTM's (applied to every layer's output but the last).
    """
    hidden_all, cell_all = state
    layer_input = inputs
    final_hidden, final_cell, traces = [], [], []
    for layer in range(lstm.num_layers):
        layer_output, (hidden, cell), traced = run_layer(
            layer_input, hidden_all[layer], cell_all[layer], layer_weights(lstm, layer), trace=trace
        )
        final_hidden.append(hidden)
        final_cell.append(cell)
        if traced is not None:
            traces.append(traced)
        if layer < lstm.num_layers - 1 and dropout > 0:
            layer_output = nn.functional.dropout(layer_output, dropout, training)
        layer_input = layer_output
    return layer_input, (torch.stack(final_hidden), torch.stack(final_cell)), traces
