"""Text normalisation before analysis: Unicode form, HTML, case, a cleaning regex, whitespace.

Whitespace runs (tabs and newlines included) always collapse to one space: analyzers then never see
control characters, and Okt never emits a newline as a token. Invisible characters (zero-width
spaces and joiners, direction marks, the soft hyphen, a stray byte-order mark, C0 controls) are
spaces too: they would otherwise glue to a word and make it a token no one typed.
"""
from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass

_TAG = re.compile(r"<[^>]{0,200}>")
_INVISIBLE = re.compile("[\x00-\x08\x0e-\x1f\x7f\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064"
                        "\u2066-\u206f\ufeff]")


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
        text = " ".join(_INVISIBLE.sub(" ", text).split())
        if len(text) > self.max_chars:
            # Cut at a space where one is near, so no word is split in half.
            cut = text.rfind(" ", max(0, self.max_chars - 50), self.max_chars + 1)
            return text[: cut if cut > 0 else self.max_chars], True
        return text, False
