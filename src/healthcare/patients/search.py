"""Folding names for search: case and accents are ignored, any script is kept."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

WORD = re.compile(r"\w+")


@lru_cache(maxsize=1 << 16)
def fold(text: str) -> str:
    """Lower-case, strip accents: 'Zoë Ångström' -> 'zoe angstrom'. Kept for the names seen
    most recently: duplicate checks fold the same names again and again."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def search_words(query: str) -> list[str]:
    """The words of a search box entry, folded; every one must start a word of the name."""
    return WORD.findall(fold(query))
