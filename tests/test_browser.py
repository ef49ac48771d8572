"""The HTML pages of `inspect` and `classify --explain` in a real browser: headless Chromium.

Each page is loaded from disk; the DOM Chromium has built after running the page's scripts
is checked for what a reader would see. Skipped where Chromium is not installed
(Debian: `apt-get install chromium`). With LSTMTEXT_SCREENSHOTS=DIR the same check saves
a screenshot of each page as DIR/inspect.png and DIR/explain.png (the ones in docs/).
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium is not installed (.ci/run installs Debian's chromium where root has apt)",
)

SCREEN = (1000, 640)
MAX_PNG_BYTES = 300_000
ROMEO = (
    "ROMEO:\nBut, soft! what light through yonder window breaks?\nIt is the east, and Juliet is the sun.\n"
)
REVIEW = (
    "The acting is superb and the score is lovely. But the plot is a mess, the dialogue is "
    "clumsy, and the ending is a dull letdown. I wanted to love it; I was bored."
)


def chromium(page: Path, profile: Path, *extra: str) -> str:
    """Run headless Chromium on `page` with no network and no profile of its own; its stdout."""
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", *extra, page.resolve().as_uri(),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def dom(page: Path, profile: Path) -> str:
    return chromium(page, profile, "--virtual-time-budget=5000", "--dump-dom")


def screenshot(page: Path, profile: Path, name: str) -> None:
    """Saved only when LSTMTEXT_SCREENSHOTS names a folder (docs/ for the ones in the docs)."""
    folder = os.environ.get("LSTMTEXT_SCREENSHOTS")
    if not folder:
        return
    target = Path(folder) if Path(folder).is_absolute() else REPO / folder
    target.mkdir(parents=True, exist_ok=True)
    path = target / f"{name}.png"
    chromium(
        page, profile, "--hide-scrollbars", f"--window-size={SCREEN[0]},{SCREEN[1]}", f"--screenshot={path}"
    )
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) < MAX_PNG_BYTES


def test_inspect_page_colours_every_token_in_chromium(cli, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(REPO)  # so the page names the model by its short path
    text = tmp_path / "romeo.txt"
    text.write_text(ROMEO, encoding="utf-8")
    page = tmp_path / "inspect.html"
    model = "lstmtext/pretrained/shakespeare"
    result = cli(["inspect", "-m", model, str(text), "--html", str(page)])
    assert result.exit_code == 0, result.stderr
    source = page.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", source, re.IGNORECASE)  # standalone
    built = dom(page, tmp_path / "profile")
    # The page's script ran: one coloured span per token, the unit picker filled, a legend
    pre = re.search(r'<pre id="text">(.*?)</pre>', built, re.DOTALL)
    assert pre is not None
    spans = re.findall(
        r'<span title="token \d+: [^"]*" style="background: rgb\(\d+, \d+, \d+\);">', pre.group(1)
    )
    assert len(spans) == len(ROMEO)  # char model: a token per character
    shown = html.unescape(re.sub(r"<[^>]+>", "", pre.group(1)))
    assert shown.replace("\u21b5", "") == ROMEO
    assert built.count("<option ") >= 256 and "layer 1 unit" in built
    assert len(re.findall(r'<span style="background: rgb', built.split('id="legend"')[1])) >= 3
    screenshot(page, tmp_path / "profile", "inspect")


def test_explain_page_shows_the_verdict_and_coloured_tokens_in_chromium(
    cli, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)  # so the page names the review by its file name
    Path("review.txt").write_text(REVIEW, encoding="utf-8")
    page = tmp_path / "explain.html"
    result = cli(["classify", "review.txt", "--explain", "--html", str(page)])
    assert result.exit_code == 0, result.stderr
    built = dom(page, tmp_path / "profile")
    heading = re.search(r'<h2>review.txt: <span class="verdict">(\w+)</span> (0\.\d+)</h2>', built)
    assert heading is not None and heading.group(1) in ("negative", "positive")
    tokens = re.findall(
        r'<span class="token"[^>]*title="([+-]\d+\.\d+)" style="background: rgb\((\d+), (\d+), (\d+)\)', built
    )
    assert len(tokens) >= 30
    greens = [t for t in tokens if float(t[0]) > 0 and int(t[2]) > int(t[1])]
    reds = [t for t in tokens if float(t[0]) < 0 and int(t[1]) > int(t[2])]
    # every tinted token's hue matches its sign; a contribution too small to tint stays white
    untinted = [t for t in tokens if t[1] == t[2] == t[3]]
    assert greens and reds and len(greens) + len(reds) + len(untinted) == len(tokens)
    pre = re.search(r"<pre>(.*?)</pre>", built, re.DOTALL)
    assert pre is not None and html.unescape(re.sub(r"<[^>]+>", "", pre.group(1))) == REVIEW
    assert "Sentences that weigh most (" in built and built.count('<td class="score"') == 3
    screenshot(page, tmp_path / "profile", "explain")
