"""A trained model as one self-contained step that runs outside lstmtext: ONNX or torch.export.

result = export_model("runs/shakespeare", "exported", ExportOptions(format="onnx"))

The output folder holds everything a runtime needs and nothing of lstmtext's:

    exported/
      model.onnx       (or model.pt2) the whole step, embedding to head
      tokenizer.json   the HF tokenizer, loadable with `tokenizers.Tokenizer.from_file`
      export.json      what the graph takes and gives: names, shapes, dtypes, vocabulary, labels

A language model's step is  ids (B, T), hidden (L, B, H), cell (L, B, H)
                         -> logits (B, T, V), hidden_out (L, B, H), cell_out (L, B, H),
so a caller carries the state from one call to the next exactly as `lstmtext generate` does.
A classifier's step is  ids (B, T) right-padded, lengths (B,) -> logits (B, classes).
B and T are free in both formats.

`quantize="int8"` (ONNX only) stores the weights of the LSTM and the linear layers as int8
through onnxruntime's dynamic quantisation: a smaller file and faster CPU inference, at a
small cost in accuracy (measured by benchmarks/export_speed.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lstmtext import __version__
from lstmtext import checkpoint as ckpt
from lstmtext.errors import ConfigError, LstmTextError
from lstmtext.files import atomic_write_bytes, atomic_write_text
from lstmtext.model import Classifier, LanguageModel

FORMATS = ("onnx", "pt2")
QUANTIZATIONS = ("int8",)
EXPORT_INFO = "export.json"
# ONNX keeps a whole model in one protobuf, which cannot pass 2 GiB.
ONNX_SIZE_LIMIT = 2**31 - 2**24


class ExportError(LstmTextError):
    """The model cannot be exported (a missing optional package, an exporter failure)."""


@dataclass(frozen=True)
class ExportOptions:
    format: str = "onnx"  # onnx | pt2
    quantize: str | None = None  # int8: dynamic int8 weights (onnx only)
    overwrite: bool = False  # replace whatever export files the folder holds

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ConfigError(f"unknown export format {self.format!r}: choose one of {', '.join(FORMATS)}")
        if self.quantize is not None and self.quantize not in QUANTIZATIONS:
            raise ConfigError(
                f"unknown quantisation {self.quantize!r}: choose one of {', '.join(QUANTIZATIONS)}"
            )
        if self.quantize is not None and self.format != "onnx":
            raise ConfigError("--quantize needs --format onnx (it runs through onnxruntime)")

    @property
    def file_name(self) -> str:
        return f"model.{self.format}"


@dataclass(frozen=True)
class ExportResult:
    directory: Path
    model_path: Path
    info: dict[str, Any]  # what export.json holds


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
class _Signature:
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


def step_signature(model: LanguageModel | Classifier) -> _Signature:
    """The exported step for `model` (in eval mode) with examples of B=2, T=3.

    The examples differ from each other and from 1, so the exporter cannot mistake a free
    axis for a fixed size or for another axis.
    """
    config = model.config
    ids = torch.randint(0, config.vocab_size, (2, 3), dtype=torch.long)
    if isinstance(model, Classifier):
        return _Signature(
            module=ClassifierStep(model).eval(),
            examples=(ids, torch.tensor([3, 2], dtype=torch.long)),
            inputs=[_spec("ids", ["batch", "time"], "int64"), _spec("lengths", ["batch"], "int64")],
            outputs=[_spec("logits", ["batch", config.num_classes], "float32")],
        )
    state_shape: list[int | str] = [config.num_layers, "batch", config.hidden_size]
    hidden, cell = model.core.initial_state(2, torch.device("cpu"))
    return _Signature(
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


# ----- the two formats ---------------------------------------------------------------------------


def _onnx_bytes(signature: _Signature) -> bytes:
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


def _pt2_bytes(signature: _Signature) -> bytes:
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


# ----- the folder --------------------------------------------------------------------------------


def export_info(checkpoint: ckpt.Checkpoint, options: ExportOptions, signature: _Signature) -> dict[str, Any]:
    """export.json: enough to tokenise, run the step and read its outputs without lstmtext."""
    config = checkpoint.config
    tokenizer = checkpoint.tokenizer
    info: dict[str, Any] = {
        "format": options.format,
        "file": options.file_name,
        "task": config.model.task,
        "quantize": options.quantize,
        "tokenizer": {
            "file": ckpt.TOKENIZER,
            "level": tokenizer.level,
            "vocab_size": tokenizer.vocab_size,
            "pad_id": tokenizer.pad_id,
            "unk_id": tokenizer.unk_id,
            "eos_id": tokenizer.eos_id,
        },
        "inputs": signature.inputs,
        "outputs": signature.outputs,
        "exported_by": {"lstmtext": __version__, "torch": torch.__version__},
    }
    if config.model.task == "lm":
        # The carried state: zeros of this shape start a text.
        state_shape = [config.model.num_layers, "batch", config.model.hidden_size]
        info["state"] = {"shape": state_shape, "dtype": "float32"}
    else:
        info["labels"] = list(config.labels)
    return info


EXPORT_FILES = (*(f"model.{f}" for f in FORMATS), ckpt.TOKENIZER, EXPORT_INFO)


def source_digest(model_dir: Path) -> str:
    """sha256 of a checkpoint's config, tokenizer and weights: which model an export came from."""
    digest = hashlib.sha256()
    for name in (ckpt.CONFIG, ckpt.TOKENIZER, ckpt.WEIGHTS):
        with open(model_dir / name, "rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


def _claim_folder(out_dir: Path, source: str, overwrite: bool) -> None:
    """Refuse a folder that holds files, unless it is an earlier export of the same model
    (exporting again replaces it) or `overwrite`: another run's tokenizer.json must not be
    replaced without a word."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise ConfigError(f"{out_dir} is a file; the export goes into a folder")
    held = {entry.name for entry in out_dir.iterdir()}
    if not held:
        return
    same_model = False
    if held <= set(EXPORT_FILES) and EXPORT_INFO in held:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            same_model = json.loads((out_dir / EXPORT_INFO).read_text()).get("source_sha256") == source
    if not (same_model or overwrite):
        shown = ", ".join(sorted(held)[:3]) + (", ..." if len(held) > 3 else "")
        raise ExportError(
            f"{out_dir} already holds files ({shown}) that are not an earlier export of this model: "
            "pick an empty folder, or pass --overwrite to replace them"
        )


def export_model(
    model_dir: Path | str, out_dir: Path | str, options: ExportOptions = ExportOptions()
) -> ExportResult:
    """Export the checkpoint in `model_dir` into the folder `out_dir`: created, or an empty one,
    or an earlier export of the same model, or any with `options.overwrite` (our files replaced)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"{out_dir} is a file; the export goes into a folder")
    checkpoint = ckpt.load_checkpoint(model_dir, device="cpu")
    source = source_digest(Path(model_dir))
    _claim_folder(out_dir, source, options.overwrite)
    model = checkpoint.model.float().eval()
    model.core.implementation = "fused"  # the exporters map nn.LSTM onto ONNX's LSTM operator
    signature = step_signature(model)
    # Not under no_grad: there nn.LSTM takes another path, which the exporters trace with T fixed.
    if options.format == "onnx":
        data = _onnx_bytes(signature)
        if options.quantize == "int8":
            data = quantize_onnx(data)
    else:
        data = _pt2_bytes(signature)
    info = export_info(checkpoint, options, signature)
    info["source_sha256"] = source
    model_path = out_dir / options.file_name
    atomic_write_bytes(model_path, data)
    atomic_write_text(out_dir / ckpt.TOKENIZER, checkpoint.tokenizer.to_str())
    # Written last: a folder with export.json is a complete export.
    atomic_write_text(out_dir / EXPORT_INFO, json.dumps(info, indent=1) + "\n")
    for other in FORMATS:  # an earlier export's model in the other format: export.json names one
        if other != options.format:
            (out_dir / f"model.{other}").unlink(missing_ok=True)
    return ExportResult(directory=out_dir, model_path=model_path, info=info)


def read_export_info(directory: Path | str) -> dict[str, Any]:
    """export.json of an exported folder."""
    path = Path(directory) / EXPORT_INFO
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExportError(f"{directory} is not an lstmtext export: {EXPORT_INFO} is missing") from None
    except (OSError, ValueError) as error:
        raise ExportError(f"cannot read {path}: {error}") from None
    if not isinstance(info, dict):
        raise ExportError(f"{path} is not a JSON object")
    return info
