"""A trained model as one self-contained step that runs outside lstmtext: ONNX or torch.export.

result = export_model("runs/shakespeare", "exported", ExportOptions(format="onnx"))

The output folder holds everything a runtime needs and nothing of lstmtext's:

    exported/
      model.onnx       (or model.pt2) the whole step, embedding to head
      tokenizer.json   the HF tokenizer, loadable with `tokenizers.Tokenizer.from_file`
      export.json      what the graph takes and gives: names, shapes, dtypes, vocabulary, labels
                       and the temperature that calibrates a classifier's probabilities

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
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lstmtext import __version__
from lstmtext.errors import ConfigError
from lstmtext.files import atomic_write_bytes, atomic_write_text
from lstmtext.runs import checkpoint as ckpt
from lstmtext.runs.export_step import (
    ExportError,
    Signature,
    onnx_bytes,
    pt2_bytes,
    quantize_onnx,
    step_signature,
)

FORMATS = ("onnx", "pt2")
QUANTIZATIONS = ("int8",)
EXPORT_INFO = "export.json"


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


def export_info(checkpoint: ckpt.Checkpoint, options: ExportOptions, signature: Signature) -> dict[str, Any]:
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
        # The graph gives the model's raw logits; the probabilities lstmtext shows are calibrated
        # (fitted on validation data), so a runtime needs the temperature to show the same.
        info["temperature"] = config.temperature
        info["probabilities"] = "softmax(logits / temperature)"
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
        data = onnx_bytes(signature)
        if options.quantize == "int8":
            data = quantize_onnx(data)
    else:
        data = pt2_bytes(signature)
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
