"""The step an export holds and its bytes in each format.

`step_signature` gives the module the exporters trace (a language model's or a classifier's
step, shapes in the `lstmtext.runs.export` docstring) with its named inputs and outputs, B and T
free; `onnx_bytes` (then `quantize_onnx` for int8) and `pt2_bytes` trace it. `lstmtext.runs.export`
writes the bytes into a folder.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lstmtext.core.model import Classifier, LanguageModel
from lstmtext.errors import LstmTextError

# ONNX keeps a whole model in one protobuf, which cannot pass 2 GiB.
ONNX_SIZE_LIMIT = 2**31 - 2**24


class ExportError(LstmTextError):
    """The model cannot be exported (a missing optional package, an exporter failure)."""


class LanguageModelStep(nn.Module):
    """The LM with its state as two plain tensors, so the graph has named inputs and outputs."""

    def __init__(self, model: LanguageModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: Tensor, hidden: Tensor, cell: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """ids (B, T), hidden, cell (L, B, H) -> logits (B, T, V), hidden, cell (L, B, H)."""
        logits, (hidden, cell) = self.model(ids, (hidden, cell))
        return logits, hidden, cell


class ClassifierStep(nn.Module):
    def __init__(self, model: Classifier) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        """ids (B, T) right-padded, lengths (B,) >= 1 -> logits (B, classes)."""
        return self.model(ids, lengths)


@dataclass(frozen=True)
class Signature:
    """The step's inputs and outputs: names, symbolic shapes, dtypes, and example inputs."""

    module: nn.Module
    examples: tuple[Tensor, ...]
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]

    @property
    def input_names(self) -> list[str]:
        return [spec["name"] for spec in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [spec["name"] for spec in self.outputs]

    def dynamic_shapes(self) -> dict[str, dict[int, Any]]:
        """torch.export's view of the free axes: every "batch" and "time" in the shapes."""
        dims = {"batch": torch.export.Dim("batch", min=1), "time": torch.export.Dim("time", min=1)}
        free = {spec["name"]: enumerate(spec["shape"]) for spec in self.inputs}
        return {
            name: {axis: dims[size] for axis, size in axes if isinstance(size, str)}
            for name, axes in free.items()
        }


def _spec(name: str, shape: list[int | str], dtype: str) -> dict[str, Any]:
    return {"name": name, "shape": shape, "dtype": dtype}


def step_signature(model: LanguageModel | Classifier) -> Signature:
    """The exported step for `model` (in eval mode) with examples of B=2, T=3.

    The examples differ from each other and from 1, so the exporter cannot mistake a free
    axis for a fixed size or for another axis.
    """
    config = model.config
    ids = torch.randint(0, config.vocab_size, (2, 3), dtype=torch.long)
    if isinstance(model, Classifier):
        return Signature(
            module=ClassifierStep(model).eval(),
            examples=(ids, torch.tensor([3, 2], dtype=torch.long)),
            inputs=[_spec("ids", ["batch", "time"], "int64"), _spec("lengths", ["batch"], "int64")],
            outputs=[_spec("logits", ["batch", config.num_classes], "float32")],
        )
    state_shape: list[int | str] = [config.num_layers, "batch", config.hidden_size]
    hidden, cell = model.core.initial_state(2, torch.device("cpu"))
    return Signature(
        module=LanguageModelStep(model).eval(),
        examples=(ids, hidden, cell),
        inputs=[
            _spec("ids", ["batch", "time"], "int64"),
            _spec("hidden", state_shape, "float32"),
            _spec("cell", state_shape, "float32"),
        ],
        outputs=[
            _spec("logits", ["batch", "time", config.vocab_size], "float32"),
            _spec("hidden_out", state_shape, "float32"),
            _spec("cell_out", state_shape, "float32"),
        ],
    )


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' and quantiser's chatter (warnings and log lines) for the block.

    Library code never prints; the loggers' levels are put back afterwards.
    """
    names = ("torch.onnx", "torch.export", "torch._dynamo", "torch.fx", "onnxscript", "onnx_ir", "")
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


@contextlib.contextmanager
def _fresh_lstm_dispatch() -> Iterator[None]:
    """Forget which Python kernel nn.LSTM's op was last dispatched to, before and after the block.

    Both exporters swap in a decomposition of aten.lstm that keeps T free, by editing the op's
    kernels without clearing its dispatch cache (torch 2.13), so a second export in one process
    would reuse the first one's kernel and fix T.
    """
    cache = getattr(torch.ops.aten.lstm.input, "_dispatch_cache", None)
    if cache is not None:
        cache.clear()
    try:
        yield
    finally:
        if cache is not None:
            cache.clear()


def _require(*modules: str) -> None:
    import importlib.util

    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise ExportError(
            f"this export needs the Python package(s) {', '.join(missing)}: pip install 'lstmtext[export]'"
        )


def onnx_bytes(signature: Signature) -> bytes:
    _require("onnx", "onnxscript")
    import onnx
    import onnxscript.optimizer

    with _quiet(), _fresh_lstm_dispatch():
        try:
            program = torch.onnx.export(
                signature.module,
                signature.examples,
                input_names=signature.input_names,
                output_names=signature.output_names,
                dynamic_shapes=signature.dynamic_shapes(),
                dynamo=True,
                verbose=False,
            )
        except Exception as error:  # noqa: BLE001 - the exporter raises many types; one line for all
            raise ExportError(f"torch.onnx.export failed: {type(error).__name__}: {error}") from None
    assert program is not None
    # The exporter folds only small constants. ONNX orders an LSTM's gates unlike PyTorch, so
    # each weight matrix reaches its LSTM node through Slice and Concat; left unfolded, these
    # hide the weights from the int8 quantiser, which quantises initializers only.
    proto = onnxscript.optimizer.optimize(
        program.model_proto, input_size_limit=2**62, output_size_limit=2**62
    )
    # The exporter's shape hints fix T to the example's after the LSTM (torch 2.13), so
    # onnxruntime would warn on every call with another T. Intermediate shapes are only hints:
    # drop them, and state the outputs' shapes as export.json does.
    del proto.graph.value_info[:]
    for output, spec in zip(proto.graph.output, signature.outputs, strict=True):
        dims = output.type.tensor_type.shape.dim
        del dims[:]
        for size in spec["shape"]:
            dim = dims.add()
            if isinstance(size, str):
                dim.dim_param = size
            else:
                dim.dim_value = size
    if proto.ByteSize() > ONNX_SIZE_LIMIT:
        raise ExportError("the model is over 2 GiB, more than one ONNX file holds; use --format pt2")
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def quantize_onnx(model: bytes) -> bytes:
    """Dynamic int8 quantisation: int8 weights, activations quantised on the fly per batch."""
    _require("onnxruntime")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="lstmtext-quantize-") as scratch:
        source, target = Path(scratch) / "fp32.onnx", Path(scratch) / "int8.onnx"
        source.write_bytes(model)
        with _quiet():
            quantize_dynamic(source, target, weight_type=QuantType.QInt8)
        return target.read_bytes()


def pt2_bytes(signature: Signature) -> bytes:
    try:
        # torch.export's own decomposition of nn.LSTM unrolls the time loop in Python, which
        # fixes T to the example's; this one traces a while_loop, so T stays free (as the ONNX
        # exporter does). Inference only: while_loop has no autograd yet.
        from torch.export._patches import register_lstm_while_loop_decomposition
    except ImportError:
        raise ExportError(
            f"--format pt2 needs a newer torch than {torch.__version__}; try --format onnx"
        ) from None
    with _quiet(), _fresh_lstm_dispatch(), register_lstm_while_loop_decomposition():
        try:
            program = torch.export.export(
                signature.module, signature.examples, dynamic_shapes=signature.dynamic_shapes()
            )
        except Exception as error:  # noqa: BLE001
            raise ExportError(f"torch.export failed: {type(error).__name__}: {error}") from None
        buffer = io.BytesIO()
        torch.export.save(program, buffer)
    return buffer.getvalue()
