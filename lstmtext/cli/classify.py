"""`lstmtext classify`, and the rendering of a classifier's metrics for `lstmtext evaluate`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from lstmtext.classifier.calibration import UNCERTAIN, verdict
from lstmtext.classifier.explain import Explanation
from lstmtext.classifier.predict import ClassificationMetrics, Ensemble, Prediction, Predictor, load_predictor
from lstmtext.cli.options import MAX_THREADS, model_folder
from lstmtext.cli.untrusted import escaped, json_line, literal
from lstmtext.config import ClassifyPrecision
from lstmtext.data.documents import Document, read_documents
from lstmtext.errors import ConfigError
from lstmtext.pretrained import default_classifier_dir

# A note when the contributions miss the log-odds by more than this share of their change.
COMPLETENESS_NOTE = 0.1


def classify(
    files: Annotated[
        list[str],
        typer.Argument(
            help="Texts to classify: files (one text each), - for stdin, directories of .txt, or TSV."
        ),
    ],
    model: Annotated[
        list[Path] | None,
        typer.Option(
            "--model",
            "-m",
            parser=model_folder,
            help="Classifier checkpoint (default: the embedded sentiment model). Given more than "
            "once: an ensemble, labelling by the mean of their probabilities.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per text on stdout.")] = False,
    lines: Annotated[
        bool, typer.Option("--lines", help="Each line of a file (or of stdin) is a text of its own.")
    ] = False,
    batch_tokens: Annotated[
        int, typer.Option(min=1, help="Padded tokens per batch (texts are batched by length).")
    ] = 32768,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    precision: Annotated[
        ClassifyPrecision, typer.Option(help="auto uses bf16 where the hardware accelerates it.")
    ] = ClassifyPrecision.auto,
    threads: Annotated[
        int | None,
        typer.Option(min=1, max=MAX_THREADS, help="CPU threads (default: chosen per batch shape)."),
    ] = None,
    min_confidence: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Abstain band: a verdict whose (calibrated) probability is below this is shown "
            "as 'uncertain' instead of a class.",
        ),
    ] = 0.0,
    explain: Annotated[
        bool,
        typer.Option(
            "--explain",
            help="Show each token's contribution to the verdict (integrated gradients): green "
            "for the predicted class, red against; with --json, tokens with character offsets.",
            rich_help_panel="Explanations",
        ),
    ] = False,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html",
            help="With --explain: also write the explanations as a standalone HTML page.",
            rich_help_panel="Explanations",
            show_default=False,
        ),
    ] = None,
    steps: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=1024,
            help="With --explain: integration steps (more: contributions sum closer to the "
            "log-odds; default: 8,192 / tokens, between 32 and 256).",
            rich_help_panel="Explanations",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Label each text with the classifier's most probable class and its probability.

    Probabilities are calibrated: the logits are divided by the temperature fitted on
    validation data at the end of training (or by `lstmtext calibrate`).

    \b
    Examples: [bold]lstmtext classify review.txt[/]
    [bold]echo "Loved it." | lstmtext classify - --json[/]
    [bold]lstmtext classify review.txt --explain --html why.html[/]
    """
    if html is not None and not explain:
        raise ConfigError("--html writes the page of --explain; add --explain")
    directories = model if model else [default_classifier_dir()]
    # The predictor sets the threads per batch and restores torch's count after each.
    predictor = load_predictor(
        directories, device=device, precision=precision.value, max_batch_tokens=batch_tokens, threads=threads
    )
    if min_confidence > 0 and UNCERTAIN in predictor.labels:
        raise ConfigError(
            f"--min-confidence marks verdicts {UNCERTAIN!r}, which is one of this model's classes"
        )
    documents = list(read_documents(files, lines=lines))
    if explain:
        if isinstance(predictor, Ensemble):  # gradients, and the headline's temperature, are one model's
            raise ConfigError("explanations are of one classifier; give --model once")
        _explain(predictor, documents, steps, min_confidence, as_json, html)
        return
    predictions = predictor.predict([d.text for d in documents])
    if as_json:
        for document, prediction in zip(documents, predictions, strict=True):
            record = _record(document.name, prediction, min_confidence)
            sys.stdout.write(json_line(record) + "\n")
        sys.stdout.flush()
        return
    table = Table(box=None, header_style="bold")
    table.add_column("input", overflow="fold")
    table.add_column("label")
    table.add_column("probability", justify="right")
    for document, prediction in zip(documents, predictions, strict=True):
        shown = verdict(prediction.label, prediction.probability, min_confidence)
        label = shown if shown == prediction.label else f"{shown} ({prediction.label})"
        table.add_row(escaped(document.name), escaped(label), f"{prediction.probability:.3f}")
    Console(soft_wrap=False).print(table)


def _record(name: str, prediction: Prediction | Explanation, min_confidence: float) -> dict[str, Any]:
    """One JSON line of `classify --json`; `label` is 'uncertain' inside the abstain band,
    and `most_probable` then names the class that was not asserted."""
    record: dict[str, Any] = {
        "input": name,
        "label": verdict(prediction.label, prediction.probability, min_confidence),
        "probability": round(prediction.probability, 6),
        "probabilities": {k: round(v, 6) for k, v in prediction.probabilities.items()},
    }
    if record["label"] != prediction.label:
        record["most_probable"] = prediction.label
    return record


def _explain(
    predictor: Predictor,
    documents: list[Document],
    steps: int | None,
    min_confidence: float,
    as_json: bool,
    html: Path | None,
) -> None:
    """`classify --explain`: each text's verdict with its tokens' contributions."""
    from lstmtext.classifier.explain import explain
    from lstmtext.cli import explain_render as render

    items = []
    console = Console(soft_wrap=True)
    for document in documents:
        explanation = explain(predictor, document.text, steps=steps)
        shown = verdict(explanation.label, explanation.probability, min_confidence)
        items.append((document.name, shown, explanation))
        if as_json:
            record = _record(document.name, explanation, min_confidence) | {
                "explanation": render.as_dict(explanation)
            }
            sys.stdout.write(json_line(record) + "\n")
            continue
        console.print(render.headline(document.name, explanation, shown, predictor.temperature))
        console.print(render.coloured_text(explanation))
        if len(explanation.sentences) > 1:
            console.print(render.sentences_table(explanation))
        moved = explanation.value - explanation.baseline_value
        # bf16 rounding over a long text moves the baseline's logit itself (by 1.7 on a
        # 1,000-word review): more steps do not close that gap, fp32 does.
        closer = (
            "--precision fp32 follows the path closely"
            if getattr(predictor, "precision", "fp32") == "bf16"
            else "more --steps integrate the path more closely"
        )
        if abs(explanation.completeness_gap) > COMPLETENESS_NOTE * max(abs(moved), 1.0):
            typer.echo(
                f"lstmtext: note: {literal(document.name)}: the contributions sum to "
                f"{moved + explanation.completeness_gap:+.2f}, the log-odds moved by {moved:+.2f} "
                f"from the baseline; {closer}",
                err=True,
            )
    sys.stdout.flush()
    if html is not None:
        render.write_html(html, items)
        typer.echo(f"wrote {html}", err=True)


def render_metrics(metrics: ClassificationMetrics, as_json: bool) -> None:
    """`lstmtext evaluate` on a classifier: accuracy, macro-F1 and the confusion matrix."""
    if metrics.absent:  # the macro figures leave them out; say so rather than show a recall of 0
        present = [label for label in metrics.labels if label not in metrics.absent]
        classes = "class {} is" if len(metrics.absent) == 1 else "classes {} are"
        typer.echo(
            f"lstmtext: note: {classes.format(', '.join(map(literal, metrics.absent)))} absent from the "
            f"data: macro-F1 and average recall are over {', '.join(map(literal, present))} only",
            err=True,
        )
    if as_json:
        typer.echo(json.dumps(metrics.to_dict()))
        return
    console = Console(soft_wrap=False)
    console.print(
        f"accuracy {metrics.accuracy:.4f}  macro-F1 {metrics.macro_f1:.4f}  "
        f"average recall {metrics.average_recall:.4f}  ({metrics.count} texts)"
    )
    table = Table(title="confusion matrix (rows: true, columns: predicted)", box=None, header_style="bold")
    table.add_column("true \\ predicted")
    for label in metrics.labels:
        table.add_column(escaped(label), justify="right")
    table.add_column("recall", justify="right")
    per_class = metrics.per_class()
    for label, row in zip(metrics.labels, metrics.confusion, strict=True):
        table.add_row(escaped(label), *map(str, row), _figure(per_class[label]["recall"]))
    table.add_row("precision", *(_figure(per_class[label]["precision"]) for label in metrics.labels), "")
    console.print(table)
    if metrics.reliability is not None:
        from lstmtext.cli.reliability_render import reliability_table

        console.print(
            f"expected calibration error {metrics.reliability.ece:.4f} "
            f"({len(metrics.reliability.bins)} bins; 0 = perfectly calibrated)"
        )
        console.print(reliability_table(metrics.reliability))


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"  # None: the data cannot say (a class absent)
