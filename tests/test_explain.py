"""`classify --explain`: integrated gradients, their completeness, offsets into the input, the page."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from lstmtext.classifier.explain import explain, logits_from_embeddings, sentence_scores, sentence_spans
from lstmtext.classifier.predict import Predictor
from lstmtext.config import ModelConfig, RunConfig, TokenizerConfig
from lstmtext.core.model import Classifier
from lstmtext.data.tokenizer import TextTokenizer
from lstmtext.pretrained import PRETRAINED, SENTIMENT

EMBEDDED = PRETRAINED / SENTIMENT
UNICODE_TEXT = "Naïve  café — “great”\n film! 😀 日本語, e\u0301 <br /><br />Dull; AWFUL?"
# What "completeness" is held to, in fp32 (bf16 adds its own error): |sum of contributions -
# (f(input) - f(baseline))| below this share of |f(input) - f(baseline)|, plus 1e-3.
TOLERANCE_TRAINED = 0.02  # the tiny trained classifier, 64 steps
TOLERANCE_SMOOTH = 0.001  # a random-weight classifier, 32 steps


def random_predictor(classes: int = 3) -> Predictor:
    torch.manual_seed(0)
    tokenizer = TextTokenizer.train(["the film was great and dull and moving"], TokenizerConfig("word"))
    config = ModelConfig(
        vocab_size=tokenizer.vocab_size, embedding_dim=8, hidden_size=12, num_layers=2, dropout=0.3,
        task="classify", num_classes=classes,
    )  # fmt: skip
    labels = tuple(f"c{k}" for k in range(classes))
    run = RunConfig(tokenizer=TokenizerConfig("word"), model=config, labels=labels, temperature=1.7)
    return Predictor(Classifier(config), tokenizer, run, device="cpu", precision="fp32")


def test_the_forward_from_embeddings_is_the_models_forward(tiny_classifier: Path) -> None:
    for predictor in (Predictor.load(tiny_classifier, device="cpu"), random_predictor()):
        ids = torch.tensor([[4, 5, 6, 7, 5], [6, 4, 5, 0, 0]])
        lengths = torch.tensor([5, 3])
        with torch.no_grad():
            expected = predictor.model(ids, lengths)
            got = logits_from_embeddings(predictor.model, predictor.model.core.embedding(ids), lengths)
        torch.testing.assert_close(got, expected)


def test_contributions_add_up_to_the_change_of_the_log_odds(tiny_classifier: Path) -> None:
    """Completeness (Sundararajan et al. 2017), up to the trapezoid rule's error."""
    cases = [
        (random_predictor(), 32, TOLERANCE_SMOOTH),
        (Predictor.load(tiny_classifier, device="cpu", precision="fp32"), 64, TOLERANCE_TRAINED),
    ]
    for predictor, steps, tolerance in cases:
        predictor.model.train()  # explain must switch dropout off itself, and restore the mode
        for text in ("the film was great", "dull and moving , the film", "great great dull"):
            explanation = explain(predictor, text, steps=steps)
            moved = explanation.value - explanation.baseline_value
            assert abs(explanation.completeness_gap) <= tolerance * abs(moved) + 1e-3, (text, moved)
            # value is the calibrated log-odds of the predicted class, whose probability is reported
            p = explanation.probability
            if p < 0.999:  # float32 probabilities of nearly 1 say little about the log-odds
                assert explanation.value == pytest.approx(
                    torch.logit(torch.tensor(p), eps=0).item(), abs=1e-3
                )
        assert predictor.model.training
        predictor.model.eval()


def check_offsets(text: str, tokens: list[dict]) -> None:
    """The rule: text[start:end] is what each token stands for. A token holding whole
    characters decodes to exactly that (a byte-level BPE token carries the space before its
    word, and its span includes it); byte tokens that split one character all span it."""
    for token in tokens:
        assert 0 <= token["start"] < token["end"] <= len(text)
        assert token["text"] == text[token["start"] : token["end"]]


def test_offsets_map_back_to_the_input_at_every_level(tmp_path: Path) -> None:
    corpus = ["the film was great and dull", "café 日本 great"]
    for level in ("char", "word", "bpe"):
        tokenizer = TextTokenizer.train(corpus, TokenizerConfig(level, vocab_size=300))
        ids, spans = tokenizer.encode_with_offsets(UNICODE_TEXT)
        assert ids == tokenizer.encode(UNICODE_TEXT)
        check_offsets(UNICODE_TEXT, [{"text": UNICODE_TEXT[s:e], "start": s, "end": e} for s, e in spans])
        for token_id, (start, end) in zip(ids, spans, strict=True):
            surface = UNICODE_TEXT[start:end]
            decoded = tokenizer.decode([token_id])
            if level == "word":  # words outside the vocabulary are <unk>, line breaks <eos>
                assert decoded in (surface, "\n") or token_id == tokenizer.unk_id
            elif "\ufffd" not in decoded:
                assert decoded == surface
            else:  # a byte of a longer character: its span is that one character
                assert end - start == 1 and len(surface.encode()) > 1


def test_explain_json_schema_and_offsets_with_the_embedded_bpe_model(cli, tmp_path: Path) -> None:
    review = tmp_path / "review.txt"
    review.write_text(UNICODE_TEXT, encoding="utf-8")
    result = cli(["classify", str(review), "--explain", "--json", "--steps", "16"])
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    assert set(record) >= {"input", "label", "probability", "probabilities", "explanation"}
    explanation = record["explanation"]
    assert set(explanation) == {
        "method", "target", "baseline", "steps", "value", "baseline_value", "completeness_gap",
        "tokens", "sentences",
    }  # fmt: skip
    assert explanation["baseline"] == "zero embedding" and explanation["steps"] == 16
    for token in explanation["tokens"]:
        assert set(token) == {"text", "start", "end", "id", "score"}
    check_offsets(UNICODE_TEXT, explanation["tokens"])
    # Tokens cover the input in order, and every non-space character belongs to one
    covered = set()
    for token in explanation["tokens"]:
        covered.update(range(token["start"], token["end"]))
    assert {i for i, c in enumerate(UNICODE_TEXT) if not c.isspace()} <= covered
    sentences = explanation["sentences"]
    assert [s["text"] for s in sentences][-1] == "Dull; AWFUL?"
    for sentence in sentences:
        assert sentence["text"] == UNICODE_TEXT[sentence["start"] : sentence["end"]]
    total = sum(t["score"] for t in explanation["tokens"])
    assert sum(s["score"] for s in sentences) == pytest.approx(total, abs=1e-4)


def test_sentences_split_at_ends_blank_lines_and_br_tags() -> None:
    text = 'Great cast. "Awful plot!" Fine...\n\nThe end<br /><br />Really?  '
    got = [text[s:e] for s, e in sentence_spans(text)]
    assert got == ["Great cast.", '"Awful plot!"', "Fine...", "The end", "Really?"]
    assert sentence_spans("   ") == [(0, 3)]


def test_a_token_in_a_break_counts_for_the_sentence_before() -> None:
    from lstmtext.classifier.explain import TokenScore

    text = "Good. Bad."
    tokens = (
        TokenScore(1, 0, 4, 1.0),
        TokenScore(2, 4, 5, 0.5),
        TokenScore(3, 5, 9, -2.0),
        TokenScore(4, 9, 10, 0.25),
    )
    scores = sentence_scores(text, tokens)
    assert [(s.start, s.end, s.score) for s in scores] == [(0, 5, 1.5), (6, 10, -1.75)]


def test_terminal_output_and_a_standalone_html_page(cli, tiny_classifier: Path, tmp_path: Path) -> None:
    long_review = tmp_path / "long.txt"
    long_review.write_text(
        " ".join(f"the film was {'great' if i % 3 else 'dull'} ." for i in range(12)), encoding="utf-8"
    )
    page = tmp_path / "why.html"
    result = cli(["classify", "-m", str(tiny_classifier), str(long_review), "--explain", "--html", str(page)])
    assert result.exit_code == 0, result.stderr
    assert "integrated gradients" in result.stdout and "baseline zero embedding" in result.stdout
    assert "sentences that weigh most (5 of 12)" in result.stdout
    assert f"wrote {page}" in result.stderr
    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!doctype html>") and "</html>" in html
    # Standalone: nothing fetched, no script at all
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.IGNORECASE)
    assert "<script" not in html and "@import" not in html and "url(" not in html
    assert html.count('class="token"') >= 12 * 4


def test_explain_refuses_an_ensemble_and_html_without_explain(
    cli, tiny_classifier: Path, tmp_path: Path
) -> None:
    review = tmp_path / "r.txt"
    review.write_text("the film was great", encoding="utf-8")
    result = cli(
        ["classify", "-m", str(tiny_classifier), "-m", str(tiny_classifier), str(review), "--explain"]
    )
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "one classifier" in result.stderr
    result = cli(["classify", "-m", str(tiny_classifier), str(review), "--html", str(tmp_path / "x.html")])
    assert result.exit_code == 2 and "add --explain" in result.stderr


def test_drawn_pieces_cover_the_text_once_with_byte_tokens_merged_and_leading_spaces_plain() -> None:
    from lstmtext.classifier.explain import Explanation, TokenScore
    from lstmtext.cli.explain_render import coloured_text, pieces

    text = "Good 😀 film\n"
    tokens = (
        TokenScore(1, 0, 4, 1.0),
        TokenScore(2, 4, 6, 0.5),  # " 😀", first byte tokens: the space and the emoji
        TokenScore(3, 5, 6, 0.25),  # the emoji's last byte
        TokenScore(4, 6, 11, -2.0),  # " film"
        TokenScore(5, 11, 12, 0.1),  # the line break, a token of whitespace only
    )
    explanation = Explanation(text, "positive", 0.9, {"positive": 0.9}, tokens, (), 2.2, 0.0, 32)
    drawn = pieces(explanation)
    assert "".join(text[p.start : p.end] for p in drawn) == text
    assert [(text[p.start : p.end], p.score) for p in drawn] == [
        ("Good", 1.0), (" ", None), ("😀", 0.75), (" ", None), ("film", -2.0), ("\n", 0.1),
    ]  # fmt: skip
    styles = {text[s.start : s.end]: str(s.style) for s in coloured_text(explanation).spans}
    assert "rgb(" in styles["Good"] and "rgb(" in styles["film"]


def test_a_text_too_long_to_explain_is_one_line(cli, tiny_classifier: Path, tmp_path: Path) -> None:
    review = tmp_path / "long.txt"
    review.write_text("the film was great . " * 5000, encoding="utf-8")  # 25,000 tokens
    result = cli(["classify", "-m", str(tiny_classifier), str(review), "--explain"])
    assert result.exit_code == 2 and "at most 20,000 tokens; this one has 25,000" in result.stderr


def test_worker_threads_share_the_path_and_agree_with_one_thread() -> None:
    """What two cores get: chunks of the path on worker threads, several each, summed in order."""
    predictor = random_predictor()
    text = "the film was great and dull and moving . " * 3
    threads = torch.get_num_threads()
    predictor.threads = 1
    alone = explain(predictor, text, steps=32)
    predictor.threads = 3
    shared = explain(predictor, text, steps=32, max_batch_tokens=60)  # 2 points a chunk: 18 chunks
    assert torch.get_num_threads() == threads
    assert shared.value == pytest.approx(alone.value, abs=1e-6)
    assert shared.baseline_value == pytest.approx(alone.baseline_value, abs=1e-6)
    torch.testing.assert_close(
        torch.tensor([t.score for t in shared.tokens]), torch.tensor([t.score for t in alone.tokens])
    )
