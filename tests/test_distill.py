"""Distillation: a teacher's probabilities as soft targets (`train-classifier --teacher`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lstmtext.classifier.distill import distillation_loss, read_answers, teacher_probabilities, write_answers
from lstmtext.classifier.predict import Predictor
from lstmtext.data.labelled import read_labelled
from lstmtext.errors import ConfigError, DataError
from tests.conftest import TINY_CLASSIFIER_ARGS, run_cli, write_labelled


def test_teacher_probabilities_follow_the_students_label_order(
    tiny_classifier: Path, tiny_reviews: Path
) -> None:
    texts = list(read_labelled(tiny_reviews).texts[:6])
    texts = texts + texts[:2]  # repeated texts are read once and get the same row
    expected = Predictor.load(tiny_classifier, device="cpu", precision="fp32").probabilities(texts)
    soft = teacher_probabilities(
        tiny_classifier, texts, ("positive", "negative"), device="cpu", precision="fp32"
    )
    assert soft.dtype == np.float32 and soft.shape == (8, 2)
    np.testing.assert_allclose(soft, expected[:, ::-1], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(soft[6:], soft[:2])


def test_a_teacher_of_other_classes_is_refused(tiny_classifier: Path) -> None:
    with pytest.raises(ConfigError, match="knows the classes negative, positive"):
        teacher_probabilities(tiny_classifier, ["fine"], ("bad", "good"), device="cpu", precision="fp32")


def test_the_loss_mixes_labels_and_teacher() -> None:
    torch.manual_seed(0)
    logits = torch.randn(5, 3)
    targets = torch.tensor([0, 1, 2, 1, 0])
    soft = torch.softmax(torch.randn(5, 3), dim=-1)
    hard = torch.nn.functional.cross_entropy(logits, targets)
    soft_ce = -(soft * torch.log_softmax(logits, dim=-1)).sum(dim=-1).mean()  # by hand
    assert torch.allclose(distillation_loss(logits, targets, soft, 0.0, None), hard)
    assert torch.allclose(distillation_loss(logits, targets, soft, 1.0, None), soft_ce)
    assert torch.allclose(distillation_loss(logits, targets, soft, 0.3, None), 0.7 * hard + 0.3 * soft_ce)


def test_a_student_learns_the_teachers_answers_not_the_labels(
    tiny_classifier: Path, tiny_reviews: Path, tmp_path: Path
) -> None:
    """With all the weight on the teacher, labels that all lie do not matter: the student
    answers as the teacher does."""
    data = read_labelled(tiny_reviews)
    flip = {"positive": "negative", "negative": "positive"}
    lying = write_labelled(
        tmp_path / "lying.tsv", [(flip[y], x) for y, x in zip(data.labels, data.texts, strict=True)]
    )
    out = tmp_path / "student"
    args = ["train-classifier", str(lying), "--out", str(out), *TINY_CLASSIFIER_ARGS]
    result = run_cli([*args, "--teacher", str(tiny_classifier), "--teacher-weight", "1"])
    assert result.exit_code == 0, result.stderr
    saved = json.loads((out / "config.json").read_text())["classifier"]
    assert saved["teacher"] == str(tiny_classifier) and saved["teacher_weight"] == 1.0
    texts = list(data.texts)
    teacher = Predictor.load(tiny_classifier, device="cpu").predict(texts)
    student = Predictor.load(out, device="cpu").predict(texts)
    agree = np.mean([s.label == t.label for s, t in zip(student, teacher, strict=True)])
    assert agree >= 0.9


def test_cli_refuses_a_teacher_of_other_classes(tiny_classifier: Path, tmp_path: Path) -> None:
    rows = [("good", f"a fine text number {i}") for i in range(10)] + [
        ("bad", f"a poor text {i}") for i in range(10)
    ]
    data = write_labelled(tmp_path / "other.tsv", rows)
    result = run_cli(
        [
            "train-classifier",
            str(data),
            "--out",
            str(tmp_path / "run"),
            *TINY_CLASSIFIER_ARGS,
            "--teacher",
            str(tiny_classifier),
        ]
    )
    assert result.exit_code != 0
    assert "knows the classes negative, positive" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_teachers_answers_file_stands_for_the_teacher(tiny_classifier: Path, tmp_path: Path) -> None:
    texts = ["a fine film", "a dull film", "a fine film"]
    probabilities = np.asarray([[0.2, 0.8], [0.9, 0.1], [0.2, 0.8]], dtype=np.float32)
    answers = tmp_path / "answers.jsonl"
    write_answers(answers, texts, ("negative", "positive"), probabilities)
    assert len(answers.read_text().splitlines()) == 2  # each text once
    soft = teacher_probabilities(
        answers, texts[::-1], ("positive", "negative"), device="cpu", precision="fp32"
    )
    np.testing.assert_allclose(soft, probabilities[::-1, ::-1])
    with pytest.raises(DataError, match="no answer for 1 of the training texts"):
        teacher_probabilities(answers, ["unseen"], ("negative", "positive"), device="cpu", precision="fp32")
    with pytest.raises(ConfigError, match="knows the classes negative, positive"):
        teacher_probabilities(answers, texts, ("bad", "good"), device="cpu", precision="fp32")


@pytest.mark.parametrize(
    "line",
    [
        '{"text": "x"}',
        '{"text": "x", "probabilities": {"a": 0.5, "b": 0.6}}',
        "not json",
        '{"text": "x", "probabilities": [0, 1]}',
        '{"text": 3, "probabilities": {"a": 1}}',
    ],
)
def test_a_broken_answers_file_is_a_one_line_error(tmp_path: Path, line: str) -> None:
    answers = tmp_path / "answers.jsonl"
    answers.write_text('{"text": "y", "probabilities": {"a": 0.5, "b": 0.5}}\n' + line + "\n")
    with pytest.raises(DataError, match=r"answers.jsonl:2: "):
        read_answers(answers)


def test_the_students_data_from_a_teachers_answers(
    tiny_classifier: Path, tiny_reviews: Path, tmp_path: Path
) -> None:
    """recipes.distill_data: answers made once (on a GPU, for the real teacher), then the
    labelled rows plus the unlabelled texts under the teacher's verdict, and its answers file."""
    from recipes import distill_data

    data = tmp_path / "data"
    reviews = read_labelled(tiny_reviews)
    rows = list(zip(reviews.labels, reviews.texts, strict=True))
    write_labelled(data / "train.tsv", rows[:50])
    unlabelled = [text for _, text in rows[40:]]  # ten of them also labelled
    (data / "lm.txt").write_text("\n".join(unlabelled) + "\n", encoding="utf-8")
    answers = tmp_path / "answers"
    distill_data.answer(tiny_classifier, data, answers, device="cpu")
    assert np.load(answers / "lm.npy").shape == (40,)
    counts = distill_data.write(data, answers, tmp_path / "out")
    assert counts == {"labelled": 50, "teacher_labelled": 30}
    student_rows = read_labelled(tmp_path / "out" / "train.tsv")
    teacher = Predictor.load(tiny_classifier, device="cpu", precision="auto").predict(unlabelled[10:])
    assert list(student_rows.labels[50:]) == [t.label for t in teacher]
    _, answered = read_answers(tmp_path / "out" / "answers.jsonl")
    assert set(answered) == set(student_rows.texts)
    (data / "lm.txt").write_text("another text\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="not those the answers"):
        distill_data.write(data, answers, tmp_path / "out")
