"""The fast inference step: one token per row through the stacked LSTM and the head.

Calling nn.LSTM once per token spends most of its time outside the matrix products (weight
checks, packing, allocation). This step computes the same function with the weights
arranged once, up front, so that each layer is one matrix product and a few in-place
pointwise ops on preallocated buffers:

- Gate blocks reordered from PyTorch's (input, forget, candidate, output) to (input,
  forget, output, candidate), so one sigmoid covers the first 3H columns and one tanh the
  last H.
- Each layer's input and recurrent weights stacked into one (I + H, 4H) matrix, with the
  two biases summed, multiplied by the concatenation [x, h].
- Layer 0's input half precomputed for every token: table (V, 4H) = embedding @ W_ih^T +
  b_ih + b_hh, so it is a row lookup and layer 0 multiplies only h (when the table is
  small enough; a big word vocabulary keeps the embedding instead).
- The concatenations cost nothing: all hidden states live side by side in one buffer
  [x, h_0, h_1, ..., h_{L-1}] (B, X + L*H), so [h_{l-1}, h_l], the input of layer l, is a
  slice of it. Layers run in order, so layer l reads h_{l-1} of this step and its own
  h_l of the previous one, as the recurrence wants.

Dropout is off (eval). In fp32 the numbers equal LanguageModel's to float rounding (tests:
1e-5). `precision="bf16"` keeps the matrices in bfloat16 (half the bytes each token reads)
and multiplies them with oneDNN's packed-weight kernel, which uses the CPU's bf16 dot
product instructions; cell state, gates and biases stay fp32. It is opt-in: see
BENCHMARKS.md for its speed and its effect on held-out loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from lstmtext.config import STEP_PRECISIONS
from lstmtext.core.model import LanguageModel, State
from lstmtext.errors import ConfigError

# Above this size (bytes) layer 0 keeps the embedding rather than a (V, 4H) table.
TABLE_LIMIT = 64 << 20


def bf16_available() -> bool:
    """Whether this torch build and CPU have oneDNN's bf16 matrix product."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class _PackedBf16:
    """x (B, K) bf16 @ W^T, W (N, K) packed once by oneDNN -> (B, N) bf16.

    torch.ops.mkldnn._linear_pointwise is what torch.compile emits for CPU linears; plain
    torch.mm on bf16 is slower here than fp32 (no packed-weight gemv path).
    """

    def __init__(self, weight: Tensor) -> None:
        self.packed = torch.ops.mkldnn._reorder_linear_weight(weight.to(torch.bfloat16).contiguous(), 1)

    def __call__(self, inputs: Tensor) -> Tensor:
        return torch.ops.mkldnn._linear_pointwise(inputs, self.packed, None, "none", [], "")


def _gate_order(hidden_size: int) -> Tensor:
    """Row permutation from PyTorch's (i, f, g, o) blocks to (i, f, o, g)."""
    h = hidden_size
    return torch.cat([torch.arange(0, 2 * h), torch.arange(3 * h, 4 * h), torch.arange(2 * h, 3 * h)])


@dataclass
class _LayerViews:
    """Views into a StepState's buffers for one layer, made once so a step makes none."""

    inputs: Tensor  # (B, I + H) [h_{l-1}, h_l] (or [x, h_0]; h_0 alone with a table)
    gates: Tensor  # (B, 4H): i, f, o, g
    sigmoid_part: Tensor  # (B, 3H): i, f, o
    input_gate: Tensor
    forget_gate: Tensor
    output_gate: Tensor
    candidate: Tensor
    cell: Tensor  # (B, H)
    hidden: Tensor  # (B, H), where h_l is written


@dataclass
class StepState:
    """The recurrent state of B rows in the step's own layout, plus scratch buffers.

    hidden (B, X + L*H): [x, h_0, ..., h_{L-1}], X = embedding size, or 0 with a table;
    cell (L, B, H). Updated in place by InferenceStep.step.
    """

    hidden: Tensor
    cell: Tensor
    scratch: Tensor  # (B, H): tanh(c)
    logits: Tensor  # (B, V)
    layers: list[_LayerViews]

    @property
    def batch_size(self) -> int:
        return self.hidden.shape[0]

    def reorder(self, rows: Tensor) -> None:
        """Keep rows[i] as row i (beam search); rows (B,) int64."""
        with torch.inference_mode():
            self.hidden.copy_(self.hidden.index_select(0, rows))
            self.cell.copy_(self.cell.index_select(1, rows))


class InferenceStep:
    """Pre-arranged weights of a LanguageModel for token-by-token generation.

    Used as:

        step = InferenceStep(model)
        state = step.new_state(batch_size)
        logits = step.prime(prompt_ids, state)      # (B, V), the prompt fed once
        logits = step.step(next_ids, state)         # (B, V), one token per row
    """

    def __init__(
        self, model: LanguageModel, *, precision: str = "fp32", table_limit: int = TABLE_LIMIT
    ) -> None:
        if precision not in STEP_PRECISIONS:
            raise ConfigError(f"inference precision must be fp32 or bf16, not {precision!r}")
        if precision == "bf16" and not bf16_available():
            raise ConfigError("bf16 inference needs a CPU with bf16 support and torch built with oneDNN")
        config = model.config
        self.model = model
        self.device = model.head.weight.device
        if precision == "bf16" and self.device.type != "cpu":
            raise ConfigError("bf16 inference is a CPU path; use fp32 on other devices")
        self.precision = precision
        self.dtype = torch.bfloat16 if precision == "bf16" else torch.float32  # of the hidden buffer
        self.num_layers = config.num_layers
        self.hidden_size = h = config.hidden_size
        self.vocab_size = config.vocab_size
        self.suppressed: Tensor | None = None
        order = _gate_order(h)
        lstm = model.core.lstm
        with torch.inference_mode():
            embedding = model.core.embedding.weight.detach().float()  # (V, E)
            self.use_table = config.vocab_size * 4 * h * 4 <= table_limit
            self.input_width = 0 if self.use_table else config.embedding_dim  # X
            self.weights: list[Tensor] = []  # per layer (I + H, 4H), or (H, 4H) for a table's layer 0
            self.biases: list[Tensor] = []  # per layer (1, 4H)
            for layer in range(self.num_layers):
                w_ih = getattr(lstm, f"weight_ih_l{layer}").detach().float()[order]  # (4H, I)
                w_hh = getattr(lstm, f"weight_hh_l{layer}").detach().float()[order]  # (4H, H)
                bias = (
                    (getattr(lstm, f"bias_ih_l{layer}") + getattr(lstm, f"bias_hh_l{layer}")).detach().float()
                )
                bias = bias[order][None, :]  # (1, 4H)
                if layer == 0 and self.use_table:
                    self.table = (embedding @ w_ih.T + bias).contiguous()  # (V, 4H)
                    self.weights.append(w_hh.T.contiguous())
                else:
                    # (K, N) row-major: MKL's matrix-vector product is fastest this way round.
                    self.weights.append(torch.cat([w_ih, w_hh], dim=1).T.contiguous())
                self.biases.append(bias.contiguous())
            if not self.use_table:
                self.embedding = embedding.to(self.dtype).contiguous()
            self.head_weight = model.head.weight.detach().float().T.contiguous()  # (H, V)
            self.head_bias = model.head.bias.detach().float()[None, :].contiguous()  # (1, V)
            if precision == "bf16":
                self.packed = [_PackedBf16(w.T) for w in self.weights]
                self.packed_head = _PackedBf16(self.head_weight.T)
        self._batched_weights: tuple[list[Tensor], Tensor] | None = None

    def _weights_for(self, batch_size: int) -> tuple[list[Tensor], Tensor]:
        """The layer weights and head weight, laid out for this batch size.

        One row multiplies fastest by (K, N) row-major weights; a batch of rows by weights
        stored (N, K) and read transposed, as MKL's matrix product prefers (`python -m
        benchmarks --only generation` times both). The second copy is made on the first
        batched step only.
        """
        if batch_size == 1 or self.device.type != "cpu":
            return self.weights, self.head_weight
        if self._batched_weights is None:
            with torch.inference_mode():
                self._batched_weights = (
                    [w.T.contiguous().T for w in self.weights],
                    self.head_weight.T.contiguous().T,
                )
        return self._batched_weights

    def suppress(self, token_ids: list[int]) -> None:
        """Make these tokens impossible: their logits become -inf, in step() and prime() alike.

        Generation uses it for tokens the tokenizer never produces at its level (<pad>, and
        at char/BPE level <unk> and <eos>), which would otherwise be sampled now and then.
        """
        self.suppressed = torch.tensor(token_ids, dtype=torch.long, device=self.device)
        if self.model.two_level is None:  # else after the two-level softmax, as prime() does
            with torch.inference_mode():
                self.head_bias[:, self.suppressed] = float("-inf")

    def _layer_input_slice(self, layer: int) -> slice:
        h, x = self.hidden_size, self.input_width
        if layer == 0:
            return slice(x, x + h) if self.use_table else slice(0, x + h)
        return slice(x + (layer - 1) * h, x + (layer + 1) * h)

    def _hidden_slice(self, layer: int) -> slice:
        start = self.input_width + layer * self.hidden_size
        return slice(start, start + self.hidden_size)

    def new_state(self, batch_size: int) -> StepState:
        """All-zero state for `batch_size` rows, as the model starts."""
        h, n = self.hidden_size, self.num_layers
        with torch.inference_mode():
            hidden = torch.zeros(batch_size, self.input_width + n * h, dtype=self.dtype, device=self.device)
            cell = torch.zeros(n, batch_size, h, device=self.device)
            layers = []
            for layer in range(n):
                gates = torch.empty(batch_size, 4 * h, device=self.device)
                layers.append(
                    _LayerViews(
                        inputs=hidden[:, self._layer_input_slice(layer)],
                        gates=gates,
                        sigmoid_part=gates[:, : 3 * h],
                        input_gate=gates[:, :h],
                        forget_gate=gates[:, h : 2 * h],
                        output_gate=gates[:, 2 * h : 3 * h],
                        candidate=gates[:, 3 * h :],
                        cell=cell[layer],
                        hidden=hidden[:, self._hidden_slice(layer)],
                    )
                )
            return StepState(
                hidden=hidden,
                cell=cell,
                scratch=torch.empty(batch_size, h, device=self.device),
                logits=torch.empty(batch_size, self.vocab_size, device=self.device),
                layers=layers,
            )

    def to_core_state(self, state: StepState) -> State:
        """(h, c), each (L, B, H), as LSTMCore takes and returns it."""
        with torch.inference_mode():
            hidden = torch.stack(
                [state.hidden[:, self._hidden_slice(i)] for i in range(self.num_layers)]
            ).float()
            return hidden, state.cell.clone()

    def load_core_state(self, core_state: State, state: StepState) -> None:
        with torch.inference_mode():
            hidden, cell = core_state
            for layer in range(self.num_layers):
                state.hidden[:, self._hidden_slice(layer)] = hidden[layer]
            state.cell.copy_(cell)

    def prime(self, ids: Tensor, state: StepState) -> Tensor:
        """Feed ids (B, T), T >= 1, through the fused core once; logits (B, V) of the last token.

        The prompt goes through nn.LSTM in one call (one big matrix product per layer over
        all T tokens), which is faster than T steps for any prompt longer than a few tokens.
        """
        with torch.inference_mode():
            outputs, core_state = self.model.core(ids, self.to_core_state(state))
            self.load_core_state(core_state, state)
            logits = self.model.output_logits(outputs[:, -1]).float()  # (B, V)
            if self.suppressed is not None:
                logits[:, self.suppressed] = float("-inf")
            return logits

    def step(self, ids: Tensor, state: StepState) -> Tensor:
        """One token per row: ids (B,) int64 -> logits (B, V), state updated in place.

        The logits tensor is a buffer of `state`, overwritten by the next step. In bf16 the
        matrix products are bf16 (oneDNN's packed weights); the pointwise part is fp32 alike.
        """
        packed = self.precision == "bf16"
        weights, head_weight = ([], None) if packed else self._weights_for(ids.shape[0])
        with torch.inference_mode():
            if not self.use_table:
                torch.index_select(self.embedding, 0, ids, out=state.hidden[:, : self.input_width])
            for layer, views in enumerate(state.layers):
                self._gates(layer, ids, views, None if packed else weights[layer])
                views.sigmoid_part.sigmoid_()
                views.candidate.tanh_()
                views.cell.mul_(views.forget_gate).addcmul_(views.input_gate, views.candidate)
                torch.tanh(views.cell, out=state.scratch)
                torch.mul(views.output_gate, state.scratch, out=views.hidden)
            top = state.layers[-1].hidden
            if head_weight is None:
                torch.add(self.head_bias, self.packed_head(top), out=state.logits)
            else:
                torch.addmm(self.head_bias, top, head_weight, out=state.logits)
            return self._two_level(state)

    def _gates(self, layer: int, ids: Tensor, views: _LayerViews, weight: Tensor | None) -> None:
        """views.gates = the layer's inputs times its weights, plus bias: an fp32 product with
        `weight`, or a bf16 packed one without. Layer 0 with the table: the embedding rows'
        product plus bias comes precomputed, and only the hidden part is multiplied."""
        table = layer == 0 and self.use_table
        if weight is None:
            product = self.packed[layer](views.inputs)  # (B, 4H) bf16
            if table:
                torch.index_select(self.table, 0, ids, out=views.gates)
                views.gates.add_(product)
            else:
                torch.add(self.biases[layer], product, out=views.gates)
        elif table:
            torch.index_select(self.table, 0, ids, out=views.gates)
            views.gates.addmm_(views.inputs, weight)
        else:
            torch.addmm(self.biases[layer], views.inputs, weight, out=views.gates)

    def _two_level(self, state: StepState) -> Tensor:
        """state.logits, as log-probabilities of the two-level softmax when the model has one."""
        two_level = self.model.two_level
        if two_level is None:
            return state.logits
        hidden = state.layers[-1].hidden.float()
        state.logits.copy_(two_level.log_probs(state.logits, hidden))
        if self.suppressed is not None:
            state.logits[:, self.suppressed] = float("-inf")
        return state.logits
