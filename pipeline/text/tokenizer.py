"""Texts to tokens, fast: normalise, analyse each distinct text (Okt: each distinct word) once, cache.

Analyses are cached by (analyzer, options, text) in .cache/tokenize/analysis.sqlite (or in memory
for prediction), so a re-run that changes only POS filters or stopwords analyses nothing; the rest
is spread over workers (Okt: threads in one JVM; the other JVM analyzers: processes, one JVM each).
"""
from __future__ import annotations

import fnmatch
import hashlib
import math
import os
import sqlite3
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Iterable, Sequence

from pipeline.core.config import TokenizeParams
from pipeline.core.errors import DataError
from pipeline.text.analyzers import ITEM_SEP, SLOW_ANALYZERS, AnalyzerSpec, analyze_chunk, decode, init_worker, shared
from pipeline.text.normalize import Normalizer

MIN_DOCS_PER_WORKER = 300   # below this a process and a JVM cost more than they save


class AnalysisCache:
    """Analyses keyed by (analyzer signature, text digest), in one SQLite file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS analysis (sig TEXT, key BLOB, value TEXT, "
                         "PRIMARY KEY (sig, key)) WITHOUT ROWID")

    @staticmethod
    def key(text: str) -> bytes:
        return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()

    def get_many(self, sig: str, keys: Sequence[bytes]) -> dict[bytes, str]:
        found: dict[bytes, str] = {}
        for start in range(0, len(keys), 900):   # SQLite's default limit on bound variables
            chunk = keys[start:start + 900]
            rows = self._db.execute(
                f"SELECT key, value FROM analysis WHERE sig = ? AND key IN ({','.join('?' * len(chunk))})",
                (sig, *chunk))
            found.update(rows)
        return found

    def put_many(self, sig: str, items: Iterable[tuple[bytes, str]]) -> None:
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO analysis VALUES (?, ?, ?)",
                                 ((sig, k, v) for k, v in items))

    def close(self) -> None:
        self._db.close()


class MemoryCache:
    """AnalysisCache's interface in a dict: prediction reuses analyses across batches in one process."""

    def __init__(self, max_items: int = 2_000_000) -> None:
        self._items: dict[tuple[str, bytes], str] = {}
        self._max = max_items

    def get_many(self, sig: str, keys: Sequence[bytes]) -> dict[bytes, str]:
        items = self._items
        return {k: items[(sig, k)] for k in keys if (sig, k) in items}

    def put_many(self, sig: str, items: Iterable[tuple[bytes, str]]) -> None:
        if len(self._items) > self._max:   # bounded: a long stream must not grow without end
            self._items.clear()
        self._items.update(((sig, k), v) for k, v in items)

    def close(self) -> None:
        pass


@dataclass
class Report:
    documents: int = 0
    empty_after_normalisation: int = 0
    truncated_to_max_chars: int = 0
    unique_texts: int = 0
    cache_hits: int = 0
    analysed: int = 0
    workers_used: int = 0
    worker_kind: str = ""
    unique_units: int = 0       # what the analyzer saw: unique texts, or unique words (word_local)
    analysis_unit: str = "text"   # "word" when each distinct word is analysed on its own
    seconds: dict = field(default_factory=dict)
    normalised: list[str] = field(default_factory=list, repr=False)   # per text: what was analysed


def analyzer_spec(cfg: TokenizeParams) -> AnalyzerSpec:
    okt = cfg.analyzer == "okt"
    return AnalyzerSpec(cfg.analyzer, norm=cfg.norm and okt, stem=cfg.stem and okt,
                        java_heap_mb=cfg.java_heap_mb)


def resolve_workers(requested: int) -> int:
    return requested or os.cpu_count() or 1


def analyze_unique(texts: list[str], spec: AnalyzerSpec, workers: int, kind: str,
                   cache: AnalysisCache | None, report: Report, progress: bool | None) -> list[str]:
    """One analysis per text (texts are unique), from the cache where it has them."""
    from tqdm import tqdm

    sig = spec.signature()
    keys = [AnalysisCache.key(t) for t in texts]
    results: list[str | None] = [None] * len(texts)
    if cache is not None:
        found = cache.get_many(sig, keys)
        for i, k in enumerate(keys):
            results[i] = found.get(k)
    todo = [i for i, r in enumerate(results) if r is None]
    report.cache_hits, report.analysed = len(texts) - len(todo), len(todo)
    if not todo:
        return results  # type: ignore[return-value]
    if kind == "auto":
        kind = "thread" if spec.thread_safe else "process"
    n = min(workers, math.ceil(len(todo) / MIN_DOCS_PER_WORKER))
    report.workers_used, report.worker_kind = n, kind
    # Long texts first, so the last chunks are short and the workers finish together.
    todo.sort(key=lambda i: -len(texts[i]))
    chunk_size = max(20, min(2000, len(todo) // (n * 8) or 1))
    chunks = [todo[s:s + chunk_size] for s in range(0, len(todo), chunk_size)]
    bar = tqdm(total=len(todo), desc=f"tokenize ({spec.name}, {n} {kind}{'s' * (n > 1)})",
               unit="text", disable=None if progress is None else not progress, file=sys.stderr)

    def store(chunk: list[int], analyses: list[str]) -> None:
        for i, a in zip(chunk, analyses):
            results[i] = a
        if cache is not None:   # stored as they come: an interrupted run keeps what it analysed
            cache.put_many(sig, ((keys[i], a) for i, a in zip(chunk, analyses)))
        bar.update(len(chunk))

    try:
        _run_chunks(texts, chunks, spec, n, kind, store)
    finally:
        bar.close()
    return results  # type: ignore[return-value]


def _run_chunks(texts: list[str], chunks: list[list[int]], spec: AnalyzerSpec, n: int, kind: str,
                store: Callable[[list[int], list[str]], None]) -> None:
    """Each chunk (of indices into texts) analysed, and handed to `store` with its analyses as it
    is done: here, or by n threads or processes (`kind`)."""
    if n <= 1:
        analyzer = shared(spec)
        for chunk in chunks:
            store(chunk, analyzer([texts[i] for i in chunk]))
        return
    if kind == "thread":
        # One JVM, n threads: JPype releases the GIL inside Java calls. Measured on 2 cores:
        # two Okt processes spent 59 s of CPU on what one does in 35 s (each JVM pays its
        # own JIT warm-up and GC); threads share one warm-up.
        analyzer = shared(spec)
        pool = ThreadPoolExecutor(n)
        submit = lambda chunk: pool.submit(analyzer, [texts[i] for i in chunk])  # noqa: E731
    else:
        # spawn, not fork: a JVM does not survive fork, and each worker starts its own.
        pool = ProcessPoolExecutor(n, mp_context=get_context("spawn"), initializer=init_worker,
                                   initargs=(spec,))
        submit = lambda chunk: pool.submit(analyze_chunk, [texts[i] for i in chunk])  # noqa: E731
    with pool:
        futures = {submit(chunk): chunk for chunk in chunks}
        try:
            for future in as_completed(futures):
                store(futures[future], future.result())
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def token_filter(cfg: TokenizeParams, stopwords: frozenset[str]):
    keep, drop = cfg.pos_keep, cfg.pos_drop

    def tag_ok(tag: str) -> bool:
        if keep and not any(fnmatch.fnmatchcase(tag, p) for p in keep):
            return False
        return not any(fnmatch.fnmatchcase(tag, p) for p in drop)

    tag_cache: dict[str, bool] = {}   # few distinct tags: match each pattern once per tag

    def apply(analysis: str) -> list[str]:
        out = []
        for tok, tag in decode(analysis):
            ok = tag_cache.get(tag)
            if ok is None:
                ok = tag_cache[tag] = tag_ok(tag)
            if ok and tok not in stopwords:
                out.append(tok)
        return out

    return apply


def load_stopwords(cfg: TokenizeParams, base: Path) -> frozenset[str]:
    words = set(cfg.stopwords)
    if cfg.stopwords_file:
        path = base / cfg.stopwords_file
        if not path.is_file():
            raise DataError(f"tokenize.stopwords_file: {path} does not exist")
        words.update(w.strip() for w in path.read_text(encoding="utf-8").splitlines() if w.strip())
    return frozenset(words)


def tokenize_texts(texts: Sequence[str], cfg: TokenizeParams, cache_path: Path | None,
                   stopwords: frozenset[str] = frozenset(), progress: bool | None = None,
                   memory: MemoryCache | None = None) -> tuple[list[list[str] | None], Report]:
    """Tokens per text (None where normalisation left nothing), and what it took.

    Analyses come from the SQLite cache at cache_path, or from `memory` (prediction) when given.
    """
    report = Report(documents=len(texts))
    t0 = time.perf_counter()
    normalize = Normalizer(cfg.unicode, cfg.lowercase, cfg.strip_html, cfg.clean_pattern, cfg.max_chars)
    normalised = []
    for text in texts:
        norm, cut = normalize(text)
        normalised.append(norm)
        report.truncated_to_max_chars += cut
    report.empty_after_normalisation = sum(1 for t in normalised if not t)
    report.normalised = normalised
    unique = list(dict.fromkeys(t for t in normalised if t))
    report.unique_texts = len(unique)
    t1 = time.perf_counter()
    spec = analyzer_spec(cfg)
    slow = spec.name in SLOW_ANALYZERS
    # Word-local analyzers see each distinct word once, across all texts.
    units = list(dict.fromkeys(w for t in unique for w in t.split(" "))) if spec.word_local else unique
    report.unique_units = len(units)
    report.analysis_unit = "word" if spec.word_local else "text"
    cache: AnalysisCache | MemoryCache | None = None
    if slow:
        cache = memory if memory is not None else AnalysisCache(cache_path) if cache_path is not None else None
    try:
        unit_analyses = analyze_unique(units, spec, resolve_workers(cfg.workers) if slow else 1,
                                       cfg.worker_kind, cache, report, progress)
    finally:
        if cache is not None:
            cache.close()
    if spec.word_local:
        by_word = dict(zip(units, unit_analyses))
        analyses = [ITEM_SEP.join(a for a in map(by_word.__getitem__, t.split(" ")) if a) for t in unique]
    else:
        analyses = unit_analyses
    t2 = time.perf_counter()
    keep = token_filter(cfg, stopwords)
    by_text = {t: keep(a) for t, a in zip(unique, analyses)}
    tokens = [by_text[t] if t else None for t in normalised]
    report.seconds = {"normalise": round(t1 - t0, 3), "analyse": round(t2 - t1, 3),
                      "filter": round(time.perf_counter() - t2, 3)}
    return tokens, report
