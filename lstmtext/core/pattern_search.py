"""A user's regular expression searched with a time limit (`inspect --find`).

Python's `re` backtracks: `(a+)+$` on 1,900 a's and a `!` takes longer than the universe has,
holding the GIL all the while, so no thread can stop it. The search runs in a child Python
(started in about 30 ms) that is killed after SEARCH_SECONDS, and the pattern is refused in
one line. The `regex` package's timeout would do the same, but is not a dependency.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

from lstmtext.errors import ConfigError

SEARCH_SECONDS = 5.0
# Reads {"pattern", "text"} as JSON on stdin, writes the spans of the non-empty matches.
_SEARCH = (
    "import json, re, sys\n"
    "job = json.load(sys.stdin)\n"
    "found = re.finditer(job['pattern'], job['text'], re.MULTILINE)\n"
    "json.dump([m.span() for m in found if m.end() > m.start()], sys.stdout)\n"
)


def match_spans(pattern: str, text: str, seconds: float = SEARCH_SECONDS) -> list[tuple[int, int]]:
    """(start, end) of each non-empty match of `pattern` in `text` (re.MULTILINE), or ConfigError
    for an invalid pattern or a search that does not end within `seconds`."""
    try:
        re.compile(pattern, re.MULTILINE)
    except re.error as error:
        raise ConfigError(f"invalid regular expression {pattern!r}: {error}") from None
    job = json.dumps({"pattern": pattern, "text": text})
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-S", "-c", _SEARCH],
            input=job,
            capture_output=True,
            text=True,
            timeout=seconds,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ConfigError(
            f"the pattern {pattern!r} was still searching {len(text):,} characters after {seconds:g} s "
            "(nested repeats such as (a+)+ take exponential time): simplify it"
        ) from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no reason given"])[-1]
        raise ConfigError(f"the pattern {pattern!r} could not be searched: {last}")
    return [(int(start), int(end)) for start, end in json.loads(done.stdout)]
