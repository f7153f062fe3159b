"""Morphological analyzers behind one interface: a batch of texts in, one analysis per text out.

An analysis is a list of (token, tag) pairs, carried as one string ("tok\\x1ftag\\x1etok\\x1ftag")
so it pickles cheaply between processes and fits a cache row. The separators are whitespace to
Python, so normalised text (whitespace collapsed) can never contain them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from typing import Callable, Sequence

TAG_SEP, ITEM_SEP = "\x1f", "\x1e"
JVM_ANALYZERS = ("okt", "komoran", "kkma", "hannanum")
SLOW_ANALYZERS = (*JVM_ANALYZERS, "mecab")   # worth caching and spreading over processes

Analysis = list[tuple[str, str]]


def encode(pairs: Sequence[tuple[str, str]]) -> str:
    return ITEM_SEP.join(f"{tok}{TAG_SEP}{tag}" for tok, tag in pairs)


def decode(analysis: str) -> Analysis:
    if not analysis:
        return []
    return [tuple(item.split(TAG_SEP, 1)) for item in analysis.split(ITEM_SEP)]  # type: ignore[misc]


@dataclass(frozen=True)
class AnalyzerSpec:
    name: str
    norm: bool = False      # okt only
    stem: bool = False      # okt only
    java_heap_mb: int = 1024

    @property
    def word_local(self) -> bool:
        """Analysing each space-separated word alone gives the whole text's analysis, word by word.

        True of Okt without `norm`: it splits its input at whitespace into chunks and parses each
        on its own, and its stemmer never merges across the Space token between two chunks
        (tests/test_analyzers.py and bench/tokenize_speed.py check this against whole texts).
        Repeated words are then analysed once, across all documents.
        """
        return self.name == "okt" and not self.norm

    @property
    def thread_safe(self) -> bool:
        """Okt's tokenizer is stateless Scala; Kkma and Hannanum keep state per instance."""
        return self.name == "okt"

    def signature(self) -> str:
        """What the analysis depends on: a cache made under another signature is never reused."""
        parts = [self.name]
        if self.name == "okt":
            parts += [f"norm={self.norm}", f"stem={self.stem}"]
        if self.name in JVM_ANALYZERS:
            parts.append(f"konlpy={metadata.version('konlpy')}")
        if self.name == "mecab":
            parts += [f"mecab={metadata.version('python-mecab-ko')}",
                      f"dic={metadata.version('python-mecab-ko-dic')}"]
        return "|".join(parts)


class OktBatch:
    """Okt over many texts per JVM call, with output identical to one call per text.

    Okt splits its input into whitespace-separated chunks and analyses each on its own, so texts
    joined with a lone sentinel (" ⊥ ") come back as the per-text analyses separated by a sentinel
    token. One call per group (up to GROUP_DOCS texts or GROUP_CHARS characters) saves Okt's
    per-call set-up. A text that holds the sentinel, or a group whose sentinel count comes back
    wrong, is analysed one text at a time.
    """
    SENTINEL = "⊥"
    GROUP_DOCS, GROUP_CHARS = 500, 20_000

    def __init__(self, spec: AnalyzerSpec) -> None:
        import jpype

        from pipeline.text.java import start_jvm

        start_jvm(spec.java_heap_mb)
        from konlpy.tag import Okt

        self._jki = Okt().jki
        self._join = jpype.JClass("java.lang.String").join
        self._norm = jpype.java.lang.Boolean(spec.norm)
        self._stem = jpype.java.lang.Boolean(spec.stem)

    def _items(self, text: str) -> list[str]:
        # Joining on the Java side costs one string conversion per call instead of one per token.
        joined = str(self._join(ITEM_SEP, self._jki.tokenize(text, self._norm, self._stem)))
        return joined.split(ITEM_SEP) if joined else []

    @staticmethod
    def _pairs(items: list[str]) -> str:
        return encode([tuple(item.rsplit("/", 1)) for item in items])  # type: ignore[misc]

    def analyze_one(self, text: str) -> str:
        return self._pairs(self._items(text))

    def __call__(self, texts: Sequence[str]) -> list[str]:
        out: list[str | None] = [None] * len(texts)
        group: list[int] = []
        chars = 0
        for i, text in enumerate(texts):
            if self.SENTINEL in text:
                out[i] = self.analyze_one(text)
                continue
            group.append(i)
            chars += len(text)
            if len(group) >= self.GROUP_DOCS or chars >= self.GROUP_CHARS:
                self._run_group(texts, group, out)
                group, chars = [], 0
        if group:
            self._run_group(texts, group, out)
        return out  # type: ignore[return-value]

    def _run_group(self, texts: Sequence[str], group: list[int], out: list[str | None]) -> None:
        items = self._items(f" {self.SENTINEL} ".join(texts[i] for i in group))
        pieces: list[list[str]] = [[]]
        for item in items:
            if item.rsplit("/", 1)[0] == self.SENTINEL:
                pieces.append([])
            else:
                pieces[-1].append(item)
        if len(pieces) != len(group):
            for i in group:
                out[i] = self.analyze_one(texts[i])
            return
        for i, piece in zip(group, pieces):
            out[i] = self._pairs(piece)


class PerText:
    """Any analyzer with a pos(text) -> [(token, tag)] method, one call per text."""

    def __init__(self, pos: Callable[[str], Analysis]) -> None:
        self._pos = pos

    def __call__(self, texts: Sequence[str]) -> list[str]:
        return [encode(self._pos(t)) for t in texts]


_ENGLISH_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)*")


def _konlpy_pos(name: str, heap_mb: int) -> Callable[[str], Analysis]:
    from pipeline.text.java import start_jvm

    start_jvm(heap_mb)
    from konlpy import tag

    analyzer = {"komoran": tag.Komoran, "kkma": tag.Kkma, "hannanum": tag.Hannanum}[name]()
    return analyzer.pos


def create(spec: AnalyzerSpec) -> Callable[[Sequence[str]], list[str]]:
    """A batch analyzer for spec. JVM analyzers start the JVM in the calling process."""
    if spec.name == "okt":
        return OktBatch(spec)
    if spec.name in ("komoran", "kkma", "hannanum"):
        return PerText(_konlpy_pos(spec.name, spec.java_heap_mb))
    if spec.name == "mecab":
        from mecab import MeCab

        return PerText(MeCab().pos)
    if spec.name == "char":
        return PerText(lambda t: [(c, "") for c in t if c != " "])
    if spec.name == "whitespace":
        return PerText(lambda t: [(w, "") for w in t.split()])
    if spec.name == "english":
        return PerText(lambda t: [(w, "") for w in _ENGLISH_WORD.findall(t.lower())])
    raise ValueError(f"unknown analyzer {spec.name!r}")


@lru_cache(maxsize=None)
def shared(spec: AnalyzerSpec) -> Callable[[Sequence[str]], list[str]]:
    """One analyzer per spec per process (JVM analyzers load dictionaries for seconds)."""
    return create(spec)


# --- worker-process entry points (spawned processes import this module by name) ---------------
_worker_spec: AnalyzerSpec | None = None


def init_worker(spec: AnalyzerSpec) -> None:
    global _worker_spec
    _worker_spec = spec
    shared(spec)   # start the JVM and load dictionaries before the first chunk arrives


def analyze_chunk(texts: list[str]) -> list[str]:
    assert _worker_spec is not None, "init_worker was not called"
    return shared(_worker_spec)(texts)
