"""The gate-by-gate cell computes exactly what the fused nn.LSTM computes (as torch-rnn's LSTM_test does)."""

from __future__ import annotations

import pytest
import torch

from lstmtext.config import ModelConfig
from lstmtext.core.cell import lstm_cell, run_lstm
from lstmtext.core.model import Dropout, LanguageModel, LSTMCore

TOLERANCE = 1e-5


def random_lstm(layers: int = 3, inputs: int = 7, hidden: int = 11, seed: int = 0) -> torch.nn.LSTM:
    torch.manual_seed(seed)
    lstm = torch.nn.LSTM(inputs, hidden, num_layers=layers, batch_first=True)
    with torch.no_grad():
        for parameter in lstm.parameters():
            parameter.uniform_(-0.5, 0.5)
    return lstm


def random_state(layers: int, batch: int, hidden: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(layers, batch, hidden), torch.randn(layers, batch, hidden)


@pytest.mark.parametrize("layers,batch,steps", [(1, 1, 1), (2, 3, 5), (3, 4, 9)])
def test_cell_matches_fused_outputs_and_state(layers: int, batch: int, steps: int) -> None:
    lstm = random_lstm(layers)
    inputs = torch.randn(batch, steps, 7)
    state = random_state(layers, batch, 11)
    fused_out, (fused_h, fused_c) = lstm(inputs, state)
    cell_out, (cell_h, cell_c), _ = run_lstm(lstm, inputs, state)
    assert (fused_out - cell_out).abs().max() <= TOLERANCE
    assert (fused_h - cell_h).abs().max() <= TOLERANCE
    assert (fused_c - cell_c).abs().max() <= TOLERANCE


def test_cell_matches_fused_gradients() -> None:
    lstm = random_lstm(3)
    inputs = torch.randn(4, 6, 7, requires_grad=True)
    state = tuple(t.requires_grad_() for t in random_state(3, 4, 11))
    target = torch.randn(4, 6, 11)

    def gradients(run) -> list[torch.Tensor]:
        lstm.zero_grad()
        for tensor in (inputs, *state):
            tensor.grad = None
        out, (h, c) = run()
        ((out - target) ** 2).sum().add(h.sum() * 0.3 + c.sum() * 0.7).backward()
        return [p.grad.clone() for p in lstm.parameters()] + [
            inputs.grad.clone(),
            state[0].grad.clone(),
            state[1].grad.clone(),
        ]

    fused = gradients(lambda: lstm(inputs, state))
    cell = gradients(lambda: run_lstm(lstm, inputs, state)[:2])
    for a, b in zip(fused, cell, strict=True):
        assert (a - b).abs().max() <= TOLERANCE


def test_state_carried_across_calls_matches_one_long_call() -> None:
    lstm = random_lstm(2)
    inputs = torch.randn(2, 10, 7)
    state = random_state(2, 2, 11)
    whole, _ = lstm(inputs, state)
    first, carried, _ = run_lstm(lstm, inputs[:, :4], state)
    second, _, _ = run_lstm(lstm, inputs[:, 4:], carried)
    assert (torch.cat([first, second], dim=1) - whole).abs().max() <= TOLERANCE


def test_one_step_follows_the_equations() -> None:
    """Recompute each gate from sliced weights (PyTorch order: input, forget, candidate, output)."""
    lstm = random_lstm(1, inputs=3, hidden=2)
    x, h, c = torch.randn(1, 3), torch.randn(1, 2), torch.randn(1, 2)
    w, u, b = lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0 + lstm.bias_hh_l0
    pre = x @ w.T + h @ u.T + b
    i, f, g, o = (
        torch.sigmoid(pre[:, :2]),
        torch.sigmoid(pre[:, 2:4]),
        torch.tanh(pre[:, 4:6]),
        torch.sigmoid(pre[:, 6:]),
    )
    new_h, new_c, gates = lstm_cell(x, h, c, w, u, lstm.bias_ih_l0, lstm.bias_hh_l0)
    assert torch.allclose(gates["forget_gate"], f)
    assert torch.allclose(gates["input_gate"], i)
    assert torch.allclose(gates["candidate"], g)
    assert torch.allclose(new_c, f * c + i * g)
    assert torch.allclose(gates["output_gate"], o)
    assert torch.allclose(new_h, o * torch.tanh(f * c + i * g))


def test_core_implementations_are_interchangeable() -> None:
    torch.manual_seed(3)
    model = LanguageModel(
        ModelConfig(vocab_size=13, embedding_dim=8, hidden_size=8, num_layers=2, tie_weights=True)
    )
    model.eval()
    ids = torch.randint(0, 13, (3, 7))
    fused_logits, fused_state = model(ids)
    model.core.implementation = "cell"
    cell_logits, cell_state = model(ids)
    assert (fused_logits - cell_logits).abs().max() <= TOLERANCE
    assert (fused_state[0] - cell_state[0]).abs().max() <= TOLERANCE
    assert model.head.weight is model.core.embedding.weight


def test_trace_gives_gates_in_range() -> None:
    torch.manual_seed(0)
    core = LSTMCore(ModelConfig(vocab_size=5, embedding_dim=4, hidden_size=6, num_layers=2))
    core.eval()
    traces, _ = core.trace(torch.randint(0, 5, (2, 8)))
    assert len(traces) == 2
    for trace in traces:
        for gate in (trace.forget_gate, trace.input_gate, trace.output_gate):
            assert gate.shape == (2, 8, 6) and gate.min() >= 0 and gate.max() <= 1
        assert trace.candidate.abs().max() <= 1
    outputs, _ = core(torch.randint(0, 5, (2, 8)))
    assert outputs.shape == (2, 8, 6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_dropout_zeroes_p_of_the_elements_and_keeps_the_mean(dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    dropout = Dropout(0.3)
    x = torch.ones(200, 1000, dtype=dtype, requires_grad=True)
    y = dropout(x)
    assert y.dtype == dtype
    assert abs((y == 0).float().mean().item() - 0.3) < 0.005
    assert abs(y.float().mean().item() - 1.0) < 0.02
    y.sum().backward()  # the gradient flows through the kept elements, scaled as they are
    assert torch.equal(x.grad, y.detach())
    dropout.eval()
    assert dropout(x) is x
