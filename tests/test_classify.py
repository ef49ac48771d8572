"""Classification: pooling over real tokens only, transfer from an LM, metrics, and the CLI end to end."""

from __future__ import annotations

import json
import random
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from lstmtext.classifier.api import classifier_trainer, transfer_core
from lstmtext.classifier.predict import (
    Ensemble,
    Predictor,
    classification_metrics,
    evaluate_classifier,
    length_buckets,
    pad_batch,
)
from lstmtext.config import ModelConfig, RunConfig, TokenizerConfig, TrainConfig
from lstmtext.core.model import Classifier
from lstmtext.data.labelled import LabelledData
from lstmtext.data.tokenizer import TextTokenizer
from lstmtext.errors import CheckpointError, DataError
from lstmtext.pretrained import PRETRAINED, SENTIMENT
from lstmtext.runs.checkpoint import load_checkpoint
from lstmtext.training.optimization import layer_groups

from .conftest import GOOD, TINY_CLASSIFIER_ARGS, review, run_cli


@pytest.fixture
def labelled(tiny_reviews: Path) -> Path:
    return tiny_reviews


@pytest.fixture
def classifier(tiny_classifier: Path) -> Path:
    return tiny_classifier


def test_train_task_classify_is_train_classifier_with_a_deprecation_note(
    labelled: Path, tmp_path: Path
) -> None:
    quick = [*TINY_CLASSIFIER_ARGS, "--max-steps", "8", "--eval-every", "4"]
    new, old = tmp_path / "new", tmp_path / "old"
    assert run_cli(["train-classifier", str(labelled), "--out", str(new), *quick]).exit_code == 0
    result = run_cli(["train", "--task", "classify", str(labelled), "--out", str(old), *quick])
    assert result.exit_code == 0, result.stderr
    note = result.stderr.splitlines()[-1]
    assert "deprecated" in note and "lstmtext train-classifier" in note
    for name in ("model.safetensors", "config.json", "tokenizer.json", "best.json"):
        assert (new / name).read_bytes() == (old / name).read_bytes(), name


# ---- the head


def small_classifier(classes: int = 3) -> Classifier:
    torch.manual_seed(0)
    config = ModelConfig(
        vocab_size=30, embedding_dim=8, hidden_size=16, num_layers=2, task="classify", num_classes=classes
    )
    return Classifier(config).eval()


def test_pooling_ignores_padding() -> None:
    model = small_classifier()
    rows = [np.array(r, dtype=np.int64) for r in ([5, 6, 7], [8, 9, 10, 11, 12, 13, 14], [3, 4, 5, 6, 7])]
    with torch.no_grad():
        alone = torch.cat([model(torch.from_numpy(r)[None], torch.tensor([len(r)])) for r in rows])
        ids, lengths = pad_batch(rows, pad_id=0)
        padded = model(ids, lengths)
        # More padding, and padding of other ids than <pad>: neither may change anything.
        wide = torch.cat([ids, torch.full((3, 9), 17)], dim=1)
        wider = model(wide, lengths)
    torch.testing.assert_close(padded, alone, atol=1e-5, rtol=0)
    torch.testing.assert_close(wider, alone, atol=1e-5, rtol=0)


def test_pool_takes_last_max_and_mean_over_real_positions() -> None:
    model = small_classifier()
    outputs = torch.tensor([[[1.0], [3.0], [100.0]], [[2.0], [-1.0], [0.5]]])  # (B=2, T=3, H=1)
    pooled = model.pool(outputs, torch.tensor([2, 3]))
    assert pooled.tolist() == [[3.0, 3.0, 2.0], [0.5, 2.0, 0.5]]


def test_metrics_by_hand() -> None:
    metrics = classification_metrics([0, 0, 1, 1, 2], [0, 1, 1, 1, 1], ["a", "b", "c"])
    assert metrics.confusion == ((1, 1, 0), (0, 2, 0), (0, 1, 0))
    assert metrics.accuracy == pytest.approx(3 / 5)
    # F1: a = 2/3 (p 1, r 1/2), b = 2/3 (p 1/2, r 1), c = 0.
    assert metrics.macro_f1 == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)
    assert metrics.to_dict()["per_class"]["b"]["recall"] == 1.0


def test_length_buckets_cover_every_row_once_within_the_token_budget() -> None:
    lengths = [5, 300, 1, 40, 40, 7, 2000, 3, 90, 12]
    batches = list(length_buckets(lengths, max_batch_tokens=200, max_batch_size=3))
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) <= 3
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= 200


# ---- training and transfer


def test_tiny_classifier_learns_and_predicts_in_order(classifier: Path) -> None:
    best = json.loads((classifier / "best.json").read_text())
    assert best["val_accuracy"] >= 0.75
    config = json.loads((classifier / "config.json").read_text())
    assert config["model"]["task"] == "classify" and config["labels"] == ["negative", "positive"]
    predictor = Predictor.load(classifier, precision="fp32", max_batch_tokens=16)
    texts = ["the film was great and superb .", "awful and boring plot .", "lovely " * 30, "dull ."]
    predictions = predictor.predict(texts)
    assert [p.label for p in predictions] == ["positive", "negative", "positive", "negative"]
    one_by_one = np.concatenate([predictor.probabilities([t]) for t in texts])
    np.testing.assert_allclose(predictor.probabilities(texts), one_by_one, atol=1e-5)
    assert all(abs(sum(p.probabilities.values()) - 1) < 1e-5 for p in predictions)


def test_an_ensemble_averages_its_members_probabilities_in_its_own_label_order(classifier: Path) -> None:
    texts = ["the film was great and superb .", "awful and boring plot .", "quite dull ."]
    first = Predictor.load(classifier, precision="fp32")
    checkpoint = load_checkpoint(classifier, task="classify")
    torch.manual_seed(5)
    other = checkpoint.model
    with torch.no_grad():  # another head, its classes in the other order
        other.head.weight.copy_(torch.randn_like(other.head.weight).flip(0))
        other.head.bias.copy_(torch.randn_like(other.head.bias).flip(0))
    flipped = replace(checkpoint.config, labels=tuple(reversed(checkpoint.config.labels)))
    second = Predictor(other, checkpoint.tokenizer, flipped, precision="fp32")
    assert second.labels != first.labels
    ensemble = Ensemble([first, second])
    assert ensemble.labels == first.labels
    expected = (first.probabilities(texts) + second.probabilities(texts)[:, ::-1]) / 2
    np.testing.assert_allclose(ensemble.probabilities(texts), expected, atol=1e-6)
    assert not np.allclose(expected, first.probabilities(texts), atol=1e-3)
    predictions = ensemble.predict(texts)
    assert [p.label for p in predictions] == [first.labels[i] for i in expected.argmax(axis=1)]
    assert all(abs(sum(p.probabilities.values()) - 1) < 1e-5 for p in predictions)

    three_way = replace(checkpoint.config, labels=("bad", "good", "neutral"))
    with pytest.raises(DataError, match="same classes"):
        Ensemble([first, Predictor(other, checkpoint.tokenizer, three_way, precision="fp32")])


def test_transfer_core_copies_the_lm_weights(tiny_lm: Path) -> None:
    lm = load_checkpoint(tiny_lm, task="lm")
    model = Classifier(replace(lm.config.model, task="classify", num_classes=2, tie_weights=False))
    tokenizer, _ = transfer_core(model, tiny_lm)
    for name, tensor in lm.model.core.state_dict().items():
        assert torch.equal(model.core.state_dict()[name], tensor), name
    assert tokenizer.to_str() == lm.tokenizer.to_str()
    assert [len(g) for g in layer_groups(model)] == [1, 4, 4, 2]  # embedding, 2 LSTM layers, head


def test_transfer_from_a_classifier_brings_its_head_only_for_the_same_labels(classifier: Path) -> None:
    source = load_checkpoint(classifier, task="classify")
    config = source.config.model
    same = Classifier(config)
    tokenizer, _ = transfer_core(same, classifier, source.config.labels)
    assert tokenizer.to_str() == source.tokenizer.to_str()
    for name, tensor in source.model.state_dict().items():
        assert torch.equal(same.state_dict()[name], tensor), name
    other = Classifier(replace(config, num_classes=3))
    transfer_core(other, classifier, ("bad", "good", "neutral"))
    for name, tensor in source.model.core.state_dict().items():
        assert torch.equal(other.core.state_dict()[name], tensor), name
    assert other.head.weight.shape == (3, source.model.head.weight.shape[1])


def test_fine_tuning_a_classifier_on_new_data_through_the_cli(
    cli, classifier: Path, labelled: Path, tmp_path: Path
) -> None:
    out = tmp_path / "tuned"
    args = ["train", "--task", "classify", str(labelled), "--from", str(classifier), "--out", str(out)]
    result = cli([*args, "--batch-size", "8", "--max-steps", "2", "--lr", "1e-4"])
    assert result.exit_code == 0, result.stderr
    assert (out / "tokenizer.json").read_text() == (classifier / "tokenizer.json").read_text()
    predictor = Predictor.load(out, precision="fp32")
    assert [
        p.label for p in predictor.predict(["the film was great and superb .", "awful and boring plot ."])
    ] == [
        "positive",
        "negative",
    ]


def test_train_from_lm_keeps_frozen_groups_and_unfreezes_from_the_top(
    cli, tiny_lm: Path, labelled: Path, tmp_path: Path
) -> None:
    lm = load_file(tiny_lm / "model.safetensors")
    common = ["train", "--task", "classify", str(labelled), "--from", str(tiny_lm), "--batch-size", "8"]
    frozen = tmp_path / "frozen"
    result = cli([*common, "--out", str(frozen), "--unfreeze", "1000", "--max-steps", "3"])
    assert result.exit_code == 0, result.stderr
    weights = load_file(frozen / "model.safetensors")
    core = [name for name in lm if name.startswith("core.")]
    assert core and all(torch.equal(weights[name], lm[name]) for name in core)
    assert (frozen / "tokenizer.json").read_text() == (tiny_lm / "tokenizer.json").read_text()
    lm_config = json.loads((tiny_lm / "config.json").read_text())["model"]
    config = json.loads((frozen / "config.json").read_text())["model"]
    for key in ("vocab_size", "embedding_dim", "hidden_size", "num_layers"):
        assert config[key] == lm_config[key], key

    # --unfreeze 2: steps 0-1 train the head, step 2 also the top LSTM layer; the rest stays.
    gradual = tmp_path / "gradual"
    args = ["--out", str(gradual), "--unfreeze", "2", "--max-steps", "3", "--discriminative-lr", "2.6"]
    result = cli([*common, *args, "--eval-every", "100"])
    assert result.exit_code == 0, result.stderr
    weights = load_file(gradual / "model.safetensors")
    for name in core:
        changed = not torch.equal(weights[name], lm[name])
        assert changed == name.endswith("_l1"), name


def test_class_weights_and_a_separate_validation_file(cli, labelled: Path, tmp_path: Path) -> None:
    val = tmp_path / "val.jsonl"
    val.write_text('{"text": "great film .", "label": "positive"}\n', encoding="utf-8")
    out = tmp_path / "run"
    args = [*TINY_CLASSIFIER_ARGS, "--max-steps", "4", "--class-weights", "--val", str(val)]
    result = cli(["train", "--task", "classify", str(labelled), "--out", str(out), *args])
    assert result.exit_code == 0, result.stderr
    assert json.loads((out / "best.json").read_text())["step"] == 4


def test_cosine_over_the_clock_when_only_a_time_budget_is_given(tmp_path: Path) -> None:
    data = LabelledData(("good .", "bad ."), ("positive", "negative"), ("a:1", "a:2"))
    tokenizer = TextTokenizer.train(list(data.texts), TokenizerConfig("word"))
    config = ModelConfig(vocab_size=tokenizer.vocab_size, embedding_dim=4, hidden_size=4, num_layers=1)
    config = replace(config, task="classify", num_classes=2)
    train = TrainConfig(lr_schedule="cosine", max_time=100.0, warmup_steps=0)
    run_config = RunConfig(TokenizerConfig("word"), config, train, labels=("negative", "positive"))
    trainer = classifier_trainer(run_config, tokenizer, Classifier(config), data, None, tmp_path)
    assert trainer.total_steps == 0
    scales = [trainer.schedule.at(0, elapsed) / train.lr for elapsed in (0.0, 50.0, 100.0, 150.0)]
    assert scales == pytest.approx([1.0, 0.525, 0.05, 0.05], abs=1e-9)


# ---- the CLI: classify and evaluate


def test_classify_files_as_a_table_and_as_json(
    cli, classifier: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "300")  # rich folds long paths at 80 columns otherwise
    good = tmp_path / "good.txt"
    good.write_text("the acting was superb and the story lovely .", encoding="utf-8")
    bad = tmp_path / "bad.txt"
    bad.write_text("dull and tedious , a terrible ending .", encoding="utf-8")
    result = cli(["classify", "--model", str(classifier), str(good), str(bad)])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "label" in lines[0] and "probability" in lines[0]
    assert "good.txt" in lines[1] and "positive" in lines[1]
    assert "bad.txt" in lines[2] and "negative" in lines[2]

    result = cli(["classify", "--model", str(classifier), "--json", str(good), str(bad)])
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["input"] for r in records] == [str(good), str(bad)]
    assert [r["label"] for r in records] == ["positive", "negative"]
    assert set(records[0]["probabilities"]) == {"negative", "positive"}
    assert 0.5 <= records[0]["probability"] <= 1


def test_classify_stdin_folders_tsv_and_lines(cli, classifier: Path, labelled: Path, tmp_path: Path) -> None:
    model = ["classify", "--model", str(classifier), "--json"]
    result = cli([*model, "-"], input="the film was wonderful and moving .")
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    assert (record["input"], record["label"]) == ("<stdin>", "positive")
    result = cli([*model, "--lines", "-"], input="great .\n\nawful .\n")
    assert [json.loads(line)["input"] for line in result.stdout.splitlines()] == ["<stdin>:1", "<stdin>:3"]

    folder = tmp_path / "reviews"
    folder.mkdir()
    for name, text in (("a.txt", "superb ."), ("b.txt", "boring ."), ("c.md", "not a review")):
        (folder / name).write_text(text, encoding="utf-8")
    result = cli([*model, str(folder)])
    assert [json.loads(line)["input"] for line in result.stdout.splitlines()] == [
        str(folder / "a.txt"),
        str(folder / "b.txt"),
    ]
    result = cli([*model, str(labelled)])
    records = [json.loads(line) for line in result.stdout.splitlines()]
    gold = [line.split("\t")[0] for line in labelled.read_text().splitlines()]
    assert len(records) == 80 and records[0]["input"] == f"{labelled}:1"
    assert np.mean([r["label"] == g for r, g in zip(records, gold, strict=True)]) >= 0.75


def test_a_review_of_thousands_of_words(cli, classifier: Path, tmp_path: Path) -> None:
    rng = random.Random(1)
    long = tmp_path / "long.txt"
    long.write_text(" ".join(review(rng, GOOD, 20) for _ in range(250)), encoding="utf-8")  # ~5,500 words
    result = cli(["classify", "--model", str(classifier), "--json", str(long), "--batch-tokens", "512"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["label"] == "positive"


def test_evaluate_prints_accuracy_macro_f1_and_confusion(cli, classifier: Path, labelled: Path) -> None:
    result = cli(["evaluate", "--model", str(classifier), str(labelled)])
    assert result.exit_code == 0, result.stderr
    assert "accuracy" in result.stdout and "macro-F1" in result.stdout and "(80 texts)" in result.stdout
    assert "confusion matrix" in result.stdout and "precision" in result.stdout
    result = cli(["evaluate", "--model", str(classifier), str(labelled), "--json"])
    metrics = json.loads(result.stdout)
    assert metrics["count"] == 80 and metrics["accuracy"] >= 0.75
    assert sum(map(sum, metrics["confusion"])) == 80 and metrics["labels"] == ["negative", "positive"]
    table = labelled.parent / "named.csv"
    table.write_text("review,sentiment\nsuperb and lovely .,positive\nawful and dull .,negative\n")
    columns = ["--label-column", "sentiment", "--text-column", "review", "--json"]
    result = cli(["evaluate", "--model", str(classifier), str(table), *columns])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["count"] == 2


def test_classify_and_evaluate_with_an_ensemble(
    cli, classifier: Path, tiny_lm: Path, labelled: Path, tmp_path: Path
) -> None:
    tuned = tmp_path / "tuned"
    args = ["train", "--task", "classify", str(labelled), "--from", str(classifier), "--out", str(tuned)]
    assert cli([*args, "--batch-size", "8", "--max-steps", "3", "--lr", "3e-3"]).exit_code == 0
    both = ["--model", str(classifier), "--model", str(tuned)]
    result = cli(
        ["classify", *both, "--precision", "fp32", "--json", "-"], input="the film was wonderful and moving ."
    )
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    alone = [
        Predictor.load(m, precision="fp32").probabilities(["the film was wonderful and moving ."])[0]
        for m in (classifier, tuned)
    ]
    assert record["label"] == "positive"
    assert record["probabilities"]["positive"] == pytest.approx((alone[0][1] + alone[1][1]) / 2, abs=2e-3)

    result = cli(["evaluate", *both, str(labelled), "--json"])
    assert result.exit_code == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["count"] == 80 and metrics["accuracy"] >= 0.75

    result = cli(["evaluate", "--model", str(classifier), "--model", str(tiny_lm), str(labelled)])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1  # a usage error, as ConfigError is
    assert "of classifiers or of language models, not both" in result.stderr


def test_mr_cv_ensemble_scores_the_folds_of_finished_runs(
    classifier: Path, labelled: Path, tmp_path: Path
) -> None:
    import shutil

    from benchmarks.sentiment_quality import mr_cv_ensemble

    runs = [tmp_path / "cv-a", tmp_path / "cv-b"]
    for run in runs:
        shutil.copytree(classifier, run / "fold0" / "run")
        shutil.copy(labelled, run / "fold0" / "test.tsv")
    summary = mr_cv_ensemble(runs, 1)
    alone = evaluate_classifier(classifier, [labelled])
    assert summary["mean_accuracy"] == pytest.approx(alone.accuracy)  # two copies vote as one
    (runs[1] / "fold0" / "test.tsv").write_text("positive\tgreat .\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="test folds differ"):
        mr_cv_ensemble(runs, 1)


def test_wrong_kind_of_model_or_data_is_one_line(
    cli, classifier: Path, tiny_lm: Path, tmp_path: Path, tiny_corpus: Path
) -> None:
    result = cli(["generate", "--model", str(classifier), "--length", "5"])
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert "holds a classifier, but this command needs a language model" in result.stderr
    result = cli(["classify", "--model", str(tiny_lm), str(tiny_corpus)])
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert "holds a language model, but this command needs a classifier" in result.stderr
    unlabelled = tmp_path / "plain.txt"
    unlabelled.write_text("just some text without labels\n", encoding="utf-8")
    result = cli(["evaluate", "--model", str(classifier), str(unlabelled)])
    assert result.exit_code == 1 and result.stderr.count("\n") == 1 and "plain.txt:1" in result.stderr
    labelled = tmp_path / "other.tsv"
    labelled.write_text("neutral\tok .\n", encoding="utf-8")
    result = cli(["evaluate", "--model", str(classifier), str(labelled)])
    assert result.exit_code == 1 and "unknown label 'neutral'" in result.stderr


def test_build_embeds_a_classifier_with_fp16_weights(classifier: Path, tmp_path: Path) -> None:
    from lstmtext.pretrained.build import build

    size = build(classifier, tmp_path / "embedded")
    assert 0 < size < 20_000_000
    texts = ["the film was great .", "dull and boring ."]
    original = Predictor.load(classifier, precision="fp32").probabilities(texts)
    embedded = Predictor.load(tmp_path / "embedded", precision="fp32").probabilities(texts)
    np.testing.assert_allclose(embedded, original, atol=1e-2)
    with pytest.raises(CheckpointError, match="over the 0 MB limit"):
        build(classifier, tmp_path / "too-big", max_bytes=1000)


def test_the_embedded_model_is_the_default(cli, tmp_path: Path) -> None:
    text = tmp_path / "review.txt"
    text.write_text("A warm, funny and beautifully acted film. I loved every minute.", encoding="utf-8")
    result = cli(["classify", "--json", str(text)])
    if not (PRETRAINED / SENTIMENT / "model.safetensors").exists():
        assert result.exit_code == 1 and "make pretrained-sentiment" in result.stderr
        pytest.skip("the embedded sentiment model is not built in this tree")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["label"] == "positive"


# ---- the README


def readme_section() -> str:
    return (Path(__file__).resolve().parents[1] / "docs" / "classification.md").read_text(encoding="utf-8")


def test_readme_commands_use_options_the_commands_have() -> None:
    import inspect

    from lstmtext.cli import classify as classify_command
    from lstmtext.cli import evaluate, train, train_classifier

    functions = {
        "classify": classify_command.classify,
        "evaluate": evaluate.evaluate,
        "train": train.train,
        "train-classifier": train_classifier.train_classifier,
    }
    aliases: dict[str, set[str]] = {"train": set(), "train-classifier": {"--from", "--help"}}
    aliases |= {"classify": {"--json"}, "evaluate": {"--json"}}
    pattern = r"lstmtext (train-classifier|train|classify|evaluate)((?:[^\n]|\\\n)*)"
    commands = re.findall(pattern, readme_section())
    assert {name for name, _ in commands} == set(functions)
    for name, arguments in commands:
        options = {"--" + p.replace("_", "-") for p in inspect.signature(functions[name]).parameters}
        for option in re.findall(r"(--[a-z-]+)", arguments):
            assert option in options | aliases[name], f"lstmtext {name} {option}"


def test_readme_python_example_runs(
    classifier: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from lstmtext import pretrained
    from lstmtext.pretrained.build import build

    build(classifier, tmp_path / SENTIMENT)
    monkeypatch.setattr(pretrained, "PRETRAINED", tmp_path)
    [block] = re.findall(r"```python\n(.*?)```", readme_section(), flags=re.DOTALL)
    exec(compile(block, "README.md", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(line.split()[0] in ("negative", "positive") for line in lines)
