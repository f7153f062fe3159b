"""Text normalisation before analysis: Unicode form, HTML, case, a cleaning regex, whitespace.

Whitespace runs (tabs and newlines included) always collapse to one space: analyzers then never see
control characters, and Okt never emits a newline as a token.
"""
from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass

_TAG = re.compile(r"<[^>]{0,200}>")


@dataclass(frozen=True)
class Normalizer:
    unicode: str = "NFKC"          # NFC | NFKC | none
    lowercase: bool = False
    strip_html: bool = False
    clean_pattern: str = ""
    max_chars: int = 5000

    def __post_init__(self) -> None:
        object.__setattr__(self, "_clean", re.compile(self.clean_pattern) if self.clean_pattern else None)

    def __call__(self, text: str) -> tuple[str, bool]:
        """The normalised text, and whether it was cut to max_chars."""
        if self.unicode != "none":
            text = unicodedata.normalize(self.unicode, text)
        if self.strip_html:
            text = html.unescape(_TAG.sub(" ", text))
        if self.lowercase:
            text = text.lower()
        if self._clean is not None:
            text = self._clean.sub(" ", text)
        text = " ".join(text.split())
        if len(text) > self.max_chars:
            # Cut at a space where one is near, so no word is split in half.
            cut = text.rfind(" ", max(0, self.max_chars - 50), self.max_chars + 1)
            return text[: cut if cut > 0 else self.max_chars], True
        return text, False
