"""Knowledge distillation: a classifier's calibrated probabilities as soft targets for another.

A large classifier (trained on a GPU, too slow or too big to ship) labels the training texts
once before training; the smaller model then learns from the mix

    loss = (1 - w) * CE(logits, label) + w * CE(logits, teacher's probabilities)

(Hinton et al. 2015, at temperature 1 on the teacher's calibrated probabilities). The teacher's
tokenizer and shape are its own: only its answers per text are used. The teacher is a classifier
folder, run here on the training texts, or a file of its answers made where it runs (a GPU):
JSON lines of {"text": ..., "probabilities": {label: p, ...}}, one per text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch import Tensor, nn

from lstmtext.data.reading import is_file_name, read_input
from lstmtext.errors import ConfigError, DataError


def teacher_probabilities(
    teacher: Path | str,
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    device: str,
    precision: str,
) -> np.ndarray:
    """(N, len(labels)) float32: the teacher's calibrated probabilities of `texts`, columns in
    the order of `labels`. A folder is run on the texts (repeated texts once); a file gives them."""
    if is_file_name(teacher) and not Path(teacher).exists():
        raise DataError(f"the teacher's answers file {teacher} does not exist")
    if Path(teacher).is_file():
        teacher_labels, answers = read_answers(Path(teacher))
        check_classes(teacher, teacher_labels, labels)
        missing = [text for text in dict.fromkeys(texts) if text not in answers]
        if missing:
            raise DataError(
                f"{teacher}: no answer for {len(missing)} of the training texts, e.g. {missing[0][:60]!r}"
            )
        rows = np.stack([answers[text] for text in texts]) if texts else np.zeros((0, len(labels)))
        columns = [teacher_labels.index(label) for label in labels]
        return rows[:, columns].astype(np.float32)
    from lstmtext.classifier.predict import Predictor

    predictor = Predictor.load(teacher, device=device, precision=precision)
    check_classes(teacher, predictor.labels, labels)
    unique = list(dict.fromkeys(texts))
    row_of = {text: i for i, text in enumerate(unique)}
    probabilities = predictor.probabilities(unique)
    columns = [list(predictor.labels).index(label) for label in labels]
    return probabilities[:, columns][[row_of[text] for text in texts]].astype(np.float32)


def check_classes(teacher: Path | str, teacher_labels: Sequence[str], labels: Sequence[str]) -> None:
    if sorted(teacher_labels) != sorted(labels):
        raise ConfigError(
            f"the teacher {teacher} knows the classes {', '.join(teacher_labels)}; "
            f"this data has {', '.join(labels)}"
        )


def write_answers(
    path: Path | str, texts: Sequence[str], labels: Sequence[str], probabilities: np.ndarray
) -> None:
    """A teacher's answers file (read_answers' format), each text once."""
    from lstmtext.files import atomic_write_text

    seen: set[str] = set()
    lines = []
    for text, row in zip(texts, probabilities, strict=True):
        if text not in seen:
            seen.add(text)
            answer = {label: float(p) for label, p in zip(labels, row, strict=True)}
            lines.append(json.dumps({"text": text, "probabilities": answer}, ensure_ascii=False))
    atomic_write_text(Path(path), "".join(line + "\n" for line in lines))


def read_answers(path: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    """A teacher's answers file: its class names (sorted) and each text's probabilities, read
    under lstmtext.data.reading's limits. Probabilities are JSON numbers (not "0.3", not true);
    a text given twice must have the same answer both times."""
    labels: list[str] | None = None
    answers: dict[str, np.ndarray] = {}
    first_line: dict[str, int] = {}
    for number, line in enumerate(read_input(str(path)).split("\n"), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
            text, probabilities = row["text"], row["probabilities"]
            if not isinstance(probabilities, dict):
                raise TypeError
            if labels is None:
                labels = sorted(probabilities)
            if not isinstance(text, str) or sorted(probabilities) != labels:
                raise ValueError
        except RecursionError:
            raise DataError(f"{where}: JSON nested too deep to be a teacher's answer") from None
        except (ValueError, KeyError, TypeError, AttributeError):
            raise DataError(
                f'{where}: not a teacher\'s answer: a JSON object with a "text" and the '
                f'"probabilities" of the same classes as line 1'
            ) from None
        given = [probabilities[label] for label in labels]
        if not all(isinstance(p, (int, float)) and not isinstance(p, bool) for p in given):
            shown = next(p for p in given if not isinstance(p, (int, float)) or isinstance(p, bool))
            raise DataError(f"{where}: the probability {json.dumps(shown)[:40]} is not a JSON number")
        values = np.asarray(given, dtype=np.float32)
        if not np.all(np.isfinite(values)) or np.any(values < 0) or abs(values.sum() - 1) > 1e-3:
            raise DataError(f"{where}: the probabilities must be finite, >= 0 and add up to 1")
        if text in answers and not np.allclose(answers[text], values, atol=1e-6):
            raise DataError(
                f"{where}: another answer for the text of line {first_line[text]} ({text[:40]!r}); "
                "a teacher answers each text once"
            )
        answers[text] = values
        first_line.setdefault(text, number)
    if labels is None:
        raise DataError(f"{path}: no answers in the teacher's file")
    return labels, answers


def distillation_loss(
    logits: Tensor, targets: Tensor, soft_targets: Tensor, teacher_weight: float, class_weight: Tensor | None
) -> Tensor:
    """(1 - w) * cross-entropy on the labels + w * cross-entropy on the teacher's probabilities."""
    logits = logits.float()
    hard = nn.functional.cross_entropy(logits, targets, weight=class_weight)
    soft = nn.functional.cross_entropy(logits, soft_targets.float())  # probabilities as targets
    return (1.0 - teacher_weight) * hard + teacher_weight * soft
