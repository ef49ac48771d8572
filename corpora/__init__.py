"""Named corpora: the catalogue of known data sets and the resolver that finds or fetches them.

This folder sits at the repository root so the catalogue is easy to find, and installs as
the subpackage ``lstmtext.corpora``.
"""

from __future__ import annotations

from lstmtext.corpora.resolve import CorpusLocation, catalogue, resolve

__all__ = ["CorpusLocation", "catalogue", "resolve"]
