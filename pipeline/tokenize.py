"""tokenize stage: normalise texts and split them into tokens with a Korean or English analyzer.

Fast on purpose: identical texts are analysed once (with Okt, each distinct word once: it parses
words independently); analyses are cached by (analyzer, options, text) in
.cache/tokenize/analysis.sqlite, so a re-run that changes only POS filters or stopwords analyses
nothing; the rest is spread over `tokenize.workers` (Okt: threads in one JVM; the other JVM
analyzers: processes, one JVM each). Output: data/tokens.parquet (id, label, split, tokens,
length; its metadata holds the preprocessing spec that models carry to raw-text prediction) and
data/tokenize_stats.json.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import math
import os
import sqlite3
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from pipeline import paths
from pipeline.analyzers import (ITEM_SEP, SLOW_ANALYZERS, AnalyzerSpec, analyze_chunk, decode,
                                init_worker, shared)
from pipeline.atomic import atomic_file, write_json
from pipeline.cli import run_stage, stage_parser
from pipeline.config import DatasetParams, Params, TokenizeParams, to_dict
from pipeline.normalize import Normalizer
from pipeline.readers import DataError, load_documents

READS = ("dataset.name", "dataset.classes", "dataset.table.format", "dataset.table.text_columns",
         "dataset.table.label_column", "dataset.table.id_column", "dataset.table.encoding", "tokenize")
MIN_DOCS_PER_WORKER = 300   # below this a process and a JVM cost more than they save
PREPROCESS_KEY = b"pipeline.preprocess"   # tokens.parquet metadata: how raw text became tokens
EXAMPLE_CHARS = 200


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
        if n <= 1:
            analyzer = shared(spec)
            for chunk in chunks:
                store(chunk, analyzer([texts[i] for i in chunk]))
        else:
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
    finally:
        bar.close()
    return results  # type: ignore[return-value]


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


def select_classes(docs: pd.DataFrame, classes: tuple[str, ...]) -> pd.DataFrame:
    if not classes:
        return docs
    present = set(docs["label"].dropna())
    missing = [c for c in classes if c not in present]
    if missing:
        raise DataError(f"dataset.classes: no rows with label {missing[0]!r}; labels present: "
                        f"{', '.join(sorted(map(str, present)))}")
    return docs[docs["label"].isin(classes)]


def tokenize_documents(docs: pd.DataFrame, dataset: DatasetParams, cfg: TokenizeParams,
                       cache_path: Path | None, stopwords: frozenset[str],
                       progress: bool | None = None) -> tuple[pd.DataFrame, dict]:
    """The tokens table and the stats for it."""
    counts = {"rows_read": len(docs)}
    no_label = docs["label"].isna() | (docs["label"].astype(str).str.strip() == "")
    counts["dropped_missing_label"] = int(no_label.sum())
    docs = docs[~no_label]
    kept = select_classes(docs, dataset.classes)
    counts["dropped_by_class_filter"] = len(docs) - len(kept)
    kept = kept.reset_index(drop=True)
    tokens, report = tokenize_texts(kept["text"].tolist(), cfg, cache_path, stopwords, progress)
    has_text = np.array([t is not None for t in tokens], dtype=bool)
    has_tokens = np.array([bool(t) for t in tokens], dtype=bool)
    counts["dropped_empty_text"] = int((~has_text).sum())
    counts["dropped_no_tokens_after_filters"] = int((has_text & ~has_tokens).sum())
    out = kept.loc[has_tokens, ["id", "label", "split"]].reset_index(drop=True)
    out["tokens"] = [t for t in tokens if t]
    out["length"] = out["tokens"].map(len).astype("int32")
    lengths = out["length"].to_numpy()
    stats = {
        **counts,
        "documents": len(out),
        "truncated_to_max_chars": report.truncated_to_max_chars,
        "unique_texts": report.unique_texts,
        "unique_units_analysed_or_cached": report.unique_units,
        "analysis_unit": report.analysis_unit,
        "cache_hits": report.cache_hits,
        "analysed": report.analysed,
        "workers_used": report.workers_used,
        "worker_kind": report.worker_kind,
        "labels": {str(k): int(v) for k, v in out["label"].value_counts().sort_index().items()},
        "token_types": int(len({tok for toks in out["tokens"] for tok in toks})),
        "length": ({"mean": round(float(lengths.mean()), 2), **length_percentiles(lengths)}
                   if len(lengths) else {}),
        "seconds": report.seconds,
    }
    return out, stats


def length_percentiles(lengths: np.ndarray) -> dict:
    """p50/p90/p95/p99 and max of token counts (zeros for none): how long documents run."""
    if len(lengths) == 0:
        return {"p50": 0.0, "p90": 0.0, "p95": 0.0, "p99": 0.0, "max": 0}
    q = np.percentile(lengths, [50, 90, 95, 99])
    return {**{f"p{p}": round(float(v), 2) for p, v in zip((50, 90, 95, 99), q)}, "max": int(lengths.max())}


def preprocess_spec(cfg: TokenizeParams, stopwords: frozenset[str], docs: pd.DataFrame) -> dict:
    """Everything that turns a raw text into tokens, as the model needs it at prediction time.

    The stopwords are resolved (the file's words included), so the spec stands alone; a few raw
    training texts, one per label, become the MLflow model's input example.
    """
    has_text = docs["text"].fillna("").astype(str).str.strip() != ""
    examples = docs[has_text].groupby("label", sort=True).head(1)["text"].head(3)
    return {"tokenize": to_dict(cfg), "stopwords": sorted(stopwords),
            "analyzer_signature": analyzer_spec(cfg).signature(),
            "examples": [str(t)[:EXAMPLE_CHARS] for t in examples]}


def read_preprocess_spec(path: Path) -> dict:
    """The spec write_tokens stored in tokens.parquet."""
    import pyarrow.parquet as pq

    raw = (pq.read_schema(path).metadata or {}).get(PREPROCESS_KEY)
    if raw is None:
        raise DataError(f"{path}: has no preprocessing spec (written by an older version); run the "
                        "tokenize stage again (dvc repro tokenize)")
    return json.loads(raw)


def write_tokens(table: pd.DataFrame, target: Path, preprocess: dict) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow = pa.table({
        "id": pa.array(table["id"].astype(str).tolist(), pa.string()),
        "label": pa.array(table["label"].astype(str).tolist(), pa.string()),
        "split": pa.array(table["split"].astype(str).tolist(), pa.string()),
        "tokens": pa.array(table["tokens"].tolist(), pa.list_(pa.string())),
        "length": pa.array(table["length"].to_numpy(), pa.int32()),
    })
    arrow = arrow.replace_schema_metadata({PREPROCESS_KEY: json.dumps(preprocess, ensure_ascii=False)})
    with atomic_file(target) as tmp:
        pq.write_table(arrow, tmp)


def _body(params: Params, args) -> None:
    t0 = time.perf_counter()
    cfg = params.tokenize
    stopwords = load_stopwords(cfg, Path(args.params).resolve().parent)
    docs = load_documents(paths.RAW_DIR, params.dataset)
    cache_path = None if args.no_cache else paths.cache_dir() / "tokenize" / "analysis.sqlite"
    table, stats = tokenize_documents(docs, params.dataset, cfg, cache_path, stopwords)
    if table.empty:
        raise DataError(f"{paths.RAW_DIR}: no documents left after dropping empty texts "
                        f"({stats['dropped_empty_text']}) and filtering; check dataset.classes "
                        "and tokenize.clean_pattern / pos filters")
    stats["seconds"]["total"] = round(time.perf_counter() - t0, 3)
    stats["params"] = {"dataset": to_dict(params.dataset), "tokenize": to_dict(cfg)}
    kept = docs[docs["label"].isin(params.dataset.classes)] if params.dataset.classes else docs
    write_tokens(table, paths.TOKENS, preprocess_spec(cfg, stopwords, kept))
    write_json(paths.TOKENIZE_STATS, stats)
    from pipeline import tracking
    if tracking.is_tracking():
        # "params" are the run's params already; as metrics they would only be noise.
        tracking.log_stats({k: v for k, v in stats.items() if k != "params"}, "tokenize")
        tracking.log_files([paths.TOKENIZE_STATS], "tokenize")
    unit = "distinct words" if stats["analysis_unit"] == "word" else "texts"
    print(f"tokenize: {stats['documents']:,} documents ({stats['unique_texts']:,} unique texts; "
          f"{stats['analysed']:,} {unit} analysed, {stats['cache_hits']:,} from cache); dropped "
          f"{stats['dropped_empty_text']} empty; median {stats['length'].get('p50')} tokens -> "
          f"{paths.TOKENS}")


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser("python -m pipeline.tokenize", __doc__ + """
analyzers (tokenize.analyzer): okt (default; norm/stem options), komoran, kkma, hannanum (KoNLPy,
on the JVM), mecab (python-mecab-ko, no system install), char, whitespace, english (lower-cased
words). POS filters (tokenize.pos_keep / pos_drop) take the analyzer's tags, with * wildcards:
okt [Josa, Punctuation], mecab/komoran [J*, S*].""")
    parser.add_argument("--no-cache", action="store_true",
                        help="analyse every text again, ignoring and not filling the cache")
    return run_stage("tokenize", _body, parser, argv, reads=READS)


if __name__ == "__main__":
    sys.exit(main())
