"""`lstmtext inspect`: gate values, equality with the fused path, unit finding, exports, the CLI."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch

from lstmtext.cli.inspect_render import html_page, layer_series, unit_series, write_html, write_png
from lstmtext.config import ModelConfig, TokenizerConfig
from lstmtext.core.inspection import (
    QUANTITIES,
    correlations,
    find_units,
    gate_saturation,
    inspect_text,
    pattern_indicator,
    token_spans,
    top_predictions,
)
from lstmtext.core.model import Classifier, LanguageModel
from lstmtext.data.tokenizer import TextTokenizer
from lstmtext.errors import ConfigError
from lstmtext.runs.checkpoint import load_checkpoint

from .conftest import TINY_TEXT

QUOTED = 'He said "no" and then "yes, of course" and left. She said "maybe" twice, "fine".\n' * 3
PLANTED_LAYER, PLANTED_UNIT = 0, 5


def planted_quote_model() -> tuple[LanguageModel, TextTokenizer]:
    """A random 2-layer model whose layer-0 unit 5 holds +1 between quotes and 0 or -1 outside.

    Embedding dimension 0 is 1 for '"' only. At a quote the unit's forget gate closes and its
    input gate opens (f ~ 0, i ~ 1); the candidate reads the unit's own hidden state with a
    negative weight, so each quote flips the cell: 0 -> +1 (open), +1 -> -1 (close), -1 -> +1.
    Between quotes f ~ 1 and i ~ 0 keep it; the output gate stays open.
    """
    torch.manual_seed(0)
    tokenizer = TextTokenizer.train([QUOTED], TokenizerConfig("char"))
    config = ModelConfig(
        vocab_size=tokenizer.vocab_size, embedding_dim=8, hidden_size=8, num_layers=2, dropout=0.0
    )
    model = LanguageModel(config).eval()
    quote = tokenizer.token_to_id('"')
    k, hidden = PLANTED_UNIT, config.hidden_size
    rows = {gate: gate * hidden + k for gate in range(4)}  # nn.LSTM order: input, forget, candidate, output
    with torch.no_grad():
        model.core.embedding.weight[:, 0] = 0.0
        model.core.embedding.weight[quote, 0] = 1.0
        lstm = model.core.lstm
        for row in rows.values():
            lstm.weight_ih_l0[row] = 0.0
            lstm.weight_hh_l0[row] = 0.0
            lstm.bias_hh_l0[row] = 0.0
        lstm.weight_ih_l0[rows[0], 0], lstm.bias_ih_l0[rows[0]] = 20.0, -10.0  # input gate: open at '"'
        lstm.weight_ih_l0[rows[1], 0], lstm.bias_ih_l0[rows[1]] = -20.0, 10.0  # forget gate: close at '"'
        lstm.weight_hh_l0[rows[2], k], lstm.bias_ih_l0[rows[2]] = -10.0, 5.0  # candidate: flip
        lstm.bias_ih_l0[rows[3]] = 10.0  # output gate: open
        # Layer 1 would otherwise copy the signal one step late and could outrank the original.
        lstm.weight_ih_l1[:, k] = 0.0
    return model, tokenizer


@pytest.fixture(scope="module")
def tiny_tokenizer() -> TextTokenizer:
    return TextTokenizer.train([TINY_TEXT], TokenizerConfig("char"))


def tiny_model(vocab_size: int, layers: int = 2) -> LanguageModel:
    torch.manual_seed(1)
    config = ModelConfig(
        vocab_size=vocab_size, embedding_dim=8, hidden_size=12, num_layers=layers, dropout=0.1
    )
    return LanguageModel(config)


def test_shapes_and_ranges(tiny_tokenizer: TextTokenizer) -> None:
    model = tiny_model(tiny_tokenizer.vocab_size, layers=3)
    text = TINY_TEXT[:120]
    inspection = inspect_text(model, tiny_tokenizer, text)
    assert len(inspection) == len(text) and inspection.num_layers == 3 and inspection.hidden_size == 12
    assert inspection.logits is not None and inspection.logits.shape == (len(text), tiny_tokenizer.vocab_size)
    for layer in range(3):
        for quantity in QUANTITIES:
            assert inspection.values(layer, quantity).shape == (len(text), 12)
        for gate in ("forget", "input", "output"):
            values = inspection.values(layer, gate)
            assert values.min() >= 0.0 and values.max() <= 1.0
        for bounded in ("candidate", "hidden"):
            values = inspection.values(layer, bounded)
            assert values.min() >= -1.0 and values.max() <= 1.0
    assert model.training, "inspect_text must leave the model's mode as it found it"


def test_inspected_hidden_equals_the_fused_path(tiny_tokenizer: TextTokenizer) -> None:
    model = tiny_model(tiny_tokenizer.vocab_size).eval()
    inspection = inspect_text(model, tiny_tokenizer, TINY_TEXT[:200])
    ids = torch.tensor([inspection.ids])
    with torch.no_grad():
        outputs, (h_n, c_n) = model.core(ids)  # fused nn.LSTM
        logits, _ = model(ids)
    assert (inspection.traces[-1].hidden - outputs[0]).abs().max() <= 1e-5
    for layer, trace in enumerate(inspection.traces):
        assert (trace.hidden[-1] - h_n[layer, 0]).abs().max() <= 1e-5
        assert (trace.cell[-1] - c_n[layer, 0]).abs().max() <= 1e-5
    assert (inspection.logits - logits[0]).abs().max() <= 1e-4


def test_equality_on_the_trained_fixture(tiny_lm: Path) -> None:
    checkpoint = load_checkpoint(tiny_lm)
    inspection = inspect_text(checkpoint.model, checkpoint.tokenizer, TINY_TEXT[:150])
    with torch.no_grad():
        outputs, _ = checkpoint.model.core(torch.tensor([inspection.ids]))
    assert (inspection.traces[-1].hidden - outputs[0]).abs().max() <= 1e-5


def test_find_ranks_the_planted_unit_first() -> None:
    model, tokenizer = planted_quote_model()
    inspection = inspect_text(model, tokenizer, QUOTED)
    cell = inspection.unit(PLANTED_LAYER, PLANTED_UNIT, "cell")
    assert cell.max() > 0.9 and cell.min() < -0.9  # the planting works as designed
    matches = find_units(inspection, r'(?<= )"[^"]*', top=5)  # an opening quote and what follows it
    best = matches[0]
    assert (best.layer, best.unit) == (PLANTED_LAYER, PLANTED_UNIT)
    assert best.correlation > 0.9
    assert abs(matches[2].correlation) < best.correlation  # beyond the planted cell and hidden
    assert all(abs(a.correlation) >= abs(b.correlation) for a, b in zip(matches, matches[1:], strict=False))


def test_pattern_indicator_and_errors(tiny_tokenizer: TextTokenizer) -> None:
    model = tiny_model(tiny_tokenizer.vocab_size)
    inspection = inspect_text(model, tiny_tokenizer, "ab\nTo be\nOr not")
    indicator = pattern_indicator(inspection, r"^[A-Z]\w*")  # multiline: each line's first word
    assert "".join(p for p, x in zip(inspection.pieces, indicator.tolist(), strict=True) if x) == "ToOr"
    with pytest.raises(ConfigError, match="invalid regular expression"):
        find_units(inspection, "(")
    with pytest.raises(ConfigError, match="matches no token"):
        find_units(inspection, "zzz")
    with pytest.raises(ConfigError, match="every token"):
        find_units(inspection, r"[\s\S]")
    with pytest.raises(ConfigError, match="layer"):
        inspection.values(2, "cell")
    with pytest.raises(ConfigError, match="quantity"):
        inspection.values(0, "gates")


def test_correlations_handles_constant_columns() -> None:
    target = torch.tensor([0.0, 1.0, 0.0, 1.0])
    activations = torch.stack([target * 3 + 1, torch.ones(4), -target], dim=1)
    assert torch.allclose(correlations(activations, target), torch.tensor([1.0, 0.0, -1.0]))


def test_saturation_fractions(tiny_tokenizer: TextTokenizer) -> None:
    model = tiny_model(tiny_tokenizer.vocab_size)
    with torch.no_grad():
        model.core.lstm.bias_ih_l0[12:24] = 50.0  # layer 0 forget gate always right-saturated
    inspection = inspect_text(model, tiny_tokenizer, TINY_TEXT[:80])
    saturations = gate_saturation(inspection)
    assert [(s.layer, s.gate) for s in saturations][:3] == [(0, "forget"), (0, "input"), (0, "output")]
    forget = saturations[0].summary()
    assert forget["mean_right"] == 1.0 and forget["mean_left"] == 0.0 and forget["units_mostly_right"] == 12
    for s in saturations:
        assert float(s.left.min()) >= 0.0 and float((s.left + s.right).max()) <= 1.0


def test_top_predictions(tiny_tokenizer: TextTokenizer) -> None:
    model = tiny_model(tiny_tokenizer.vocab_size)
    inspection = inspect_text(model, tiny_tokenizer, "To be")
    predictions = top_predictions(inspection, tiny_tokenizer, -1, top=4)
    assert len(predictions) == 4
    probabilities = [p.probability for p in predictions]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1
    expected = torch.softmax(inspection.logits[4], dim=-1).max()
    assert probabilities[0] == pytest.approx(float(expected))
    with pytest.raises(ConfigError, match="position"):
        top_predictions(inspection, tiny_tokenizer, 5)


def test_a_classifier_has_gates_but_no_predictions(tiny_tokenizer: TextTokenizer) -> None:
    config = ModelConfig(vocab_size=tiny_tokenizer.vocab_size, embedding_dim=8, hidden_size=6, num_layers=1,
                         task="classify", num_classes=2)  # fmt: skip
    inspection = inspect_text(Classifier(config), tiny_tokenizer, "To be")
    assert inspection.logits is None and inspection.values(0, "cell").shape == (5, 6)
    with pytest.raises(ConfigError, match="classifier"):
        top_predictions(inspection, tiny_tokenizer, 0)


@pytest.mark.parametrize("level", ["char", "word", "bpe"])
def test_token_spans_cover_the_text(level: str) -> None:
    training = "the cat sat on the mat\nthe dog ate the hat\n" * 20
    tokenizer = TextTokenizer.train([training], TokenizerConfig(level, vocab_size=300))
    text = "the cat ate the hat é 🙂\nthe dog" if level != "word" else "the cat ate the hat\nthe dog"
    ids = tokenizer.encode(text)
    decoded, pieces, spans = token_spans(tokenizer, ids)
    assert len(pieces) == len(spans) == len(ids)
    assert "".join(pieces) == decoded
    if level != "word":
        assert decoded == text
    assert spans[0][0] == 0 and spans[-1][1] == len(decoded)
    for (start, end), (next_start, _) in zip(spans, spans[1:], strict=False):
        assert start <= end <= next_start or (start, end) == (next_start, _)
    # Every character of "hat" belongs to a token that a pattern for "hat" marks.
    model = tiny_model(tokenizer.vocab_size)
    inspection = inspect_text(model, tokenizer, text)
    indicator = pattern_indicator(inspection, "hat")
    marked = "".join(p for p, x in zip(inspection.pieces, indicator.tolist(), strict=True) if x)
    assert "hat" in marked and "dog" not in marked


def test_byte_fallback_tokens_share_their_character(tiny_tokenizer: TextTokenizer) -> None:
    text = "To 🙂 be"  # the emoji is not in the vocabulary: four byte tokens
    ids = tiny_tokenizer.encode(text)
    assert len(ids) == len(text) + 3
    _, pieces, spans = token_spans(tiny_tokenizer, ids)
    assert pieces[3:7] == ["", "", "", "🙂"] and len(set(spans[3:7])) == 1


def test_html_export_is_standalone_and_complete(tiny_tokenizer: TextTokenizer, tmp_path: Path) -> None:
    model = tiny_model(tiny_tokenizer.vocab_size)
    text = 'To be, or "not" </script> to be'
    inspection = inspect_text(model, tiny_tokenizer, text)
    series = layer_series(inspection, 1, "cell")
    path = tmp_path / "page.html"
    write_html(path, inspection, series, selected=3, subtitle="tiny & <random>")
    page = path.read_text(encoding="utf-8")

    class Parser(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tags: list[str] = []
            self.data = ""
            self.in_data = False

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.tags.append(tag)
            self.in_data = ("id", "data") in attrs
            assert not any(name in ("src", "href") for name, _ in attrs), "no external resources"

        def handle_endtag(self, tag: str) -> None:
            self.in_data = False

        def handle_data(self, data: str) -> None:
            if self.in_data:
                self.data += data

    parser = Parser()
    parser.feed(page)
    assert page.startswith("<!doctype html>") and "select" in parser.tags and parser.tags.count("script") == 2
    assert "http://" not in page and "https://" not in page
    data = json.loads(parser.data)
    assert "".join(data["pieces"]) == text
    assert len(data["series"]) == 12 and data["selected"] == 3
    assert all(len(s["values"]) == len(inspection) for s in data["series"])
    assert data["series"][3]["values"][0] == pytest.approx(float(series[3].values[0]), rel=1e-3)
    assert "&lt;random&gt;" in page
    assert html_page(inspection, series).count("</script>") == 2  # the text's </script> is escaped


def test_png_export(tiny_tokenizer: TextTokenizer, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    model = tiny_model(tiny_tokenizer.vocab_size)
    inspection = inspect_text(model, tiny_tokenizer, TINY_TEXT[:300])
    path = tmp_path / "units.png"
    selected = unit_series(inspection, 0, 3, "hidden")
    write_png(path, inspection, selected, layer_series(inspection, 0, "hidden"), gate_saturation(inspection))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---- the command


def test_cli_terminal_output(cli, tiny_lm: Path) -> None:
    result = cli(
        ["inspect", "--model", str(tiny_lm), "--text", "To be, or not", "--saturation", "--position", "2"]
    )
    assert result.exit_code == 0, result.stderr
    assert "To be, or not" in result.stdout
    assert "next token after position 2" in result.stdout and "probability" in result.stdout
    assert "forget" in result.stdout and "mean right" in result.stdout


def test_cli_json_find_and_exports(cli, tiny_lm: Path, tiny_corpus: Path, tmp_path: Path) -> None:
    html_path, png_path = tmp_path / "out.html", tmp_path / "out.png"
    args = ["inspect", "-m", str(tiny_lm), str(tiny_corpus), "--find", "^[A-Z]\\w*", "--top", "3", "--json"]
    args += ["--html", str(html_path), "--max-tokens", "300"]
    result = cli(args)
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert len(out["tokens"]) == len(out["values"]) == 300 and "first 300 tokens" in result.stderr
    assert len(out["find"]["units"]) == 3 and len(out["predictions"]) == 3
    best = out["find"]["units"][0]
    assert (out["layer"], out["unit"], out["quantity"]) == (best["layer"], best["unit"], best["quantity"])
    assert html_path.read_text(encoding="utf-8").startswith("<!doctype html>")

    result = cli(["inspect", "-m", str(tiny_lm), "--text", "To be", "--layer", "0", "--unit", "3",
                  "--quantity", "forget", "--json"])  # fmt: skip
    out = json.loads(result.stdout)
    assert (out["layer"], out["unit"], out["quantity"]) == (0, 3, "forget")
    assert all(0.0 <= v <= 1.0 for v in out["values"])

    pytest.importorskip("matplotlib")
    result = cli(["inspect", "-m", str(tiny_lm), "--text", "To be", "--png", str(png_path), "--saturation"])
    assert result.exit_code == 0, result.stderr
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_reads_stdin(cli, tiny_lm: Path) -> None:
    result = cli(["inspect", "-m", str(tiny_lm), "-", "--json"], input="Or to take arms")
    assert result.exit_code == 0, result.stderr
    assert "".join(json.loads(result.stdout)["tokens"]) == "Or to take arms"


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        ([], 2, "no text to inspect"),
        (["--text", "a", "FILE"], 2, "not both"),
        (["--text", "To be", "--find", "("], 2, "invalid regular expression"),
        (["--text", "To be", "--find", "zzz"], 2, "matches no token"),
        (["--text", "To be", "--layer", "7"], 2, "layer must be"),
        (["--text", "To be", "--unit", "99"], 2, "unit must be"),
        (["--text", "To be", "--position", "40"], 2, "position must be"),
        (["missing-file.txt"], 1, "missing-file.txt"),
    ],
)
def test_cli_errors_are_one_line(cli, tiny_lm: Path, extra: list[str], code: int, message: str) -> None:
    result = cli(["inspect", "-m", str(tiny_lm), *extra])
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert result.stderr.startswith("lstmtext: error:") and result.stderr.count("\n") == 1
    assert message in result.stderr


def test_readme_command_shape() -> None:
    """The README's command uses options the command has."""
    section = (Path(__file__).resolve().parents[1] / "docs" / "inspection.md").read_text(encoding="utf-8")
    import inspect as stdlib_inspect

    from lstmtext.cli.inspect import inspect

    options = {"--" + name.replace("_", "-") for name in stdlib_inspect.signature(inspect).parameters}
    options |= {"--json"}
    for used in re.findall(r"lstmtext inspect[^\n]*", section):
        for option in re.findall(r"(--[a-z-]+)", used):
            assert option in options, option
