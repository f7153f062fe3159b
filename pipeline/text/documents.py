"""Documents to the tokens table: labels kept or dropped, texts tokenized, stats, and
data/tokens.parquet (id, label, split, tokens, length; its metadata holds the preprocessing spec
that models carry to raw-text prediction)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.core.atomic import atomic_file
from pipeline.core.config import DatasetParams, TokenizeParams, to_dict
from pipeline.core.errors import DataError, reading
from pipeline.data.readers import label_column
from pipeline.data.sequences import length_percentiles
from pipeline.data.splits import TEXT_KEY
from pipeline.text.tokenizer import analyzer_spec, tokenize_texts

PREPROCESS_KEY = b"pipeline.preprocess"   # tokens.parquet metadata: how raw text became tokens
EXAMPLE_CHARS = 200


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
    # A JSONL record without the text key has no text at all (None; the reader warned): missing,
    # not one of the empty texts.
    no_text = docs["text"].isna()
    counts["dropped_missing_text"] = int(no_text.sum())
    docs = docs[~no_text]
    no_label = docs["label"].isna() | (docs["label"].astype(str).str.strip() == "")
    counts["dropped_missing_label"] = int(no_label.sum())
    if len(docs) and no_label.all():
        raise DataError(f"no row has a label: all {len(docs):,} rows read have an empty label column "
                        f"({label_column(dataset)!r}); check dataset.table.label_column")
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
    # Copies of a text share this key: prepare keeps them in one split (pipeline/data/splits.py).
    out[TEXT_KEY] = [text_key(t) for t, keep in zip(report.normalised, has_tokens) if keep]
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


def text_key(normalised: str) -> str:
    """A 64-bit digest of a normalised text (a collision of two texts would only put them in one split)."""
    return hashlib.blake2b(normalised.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def dropped_summary(stats: dict, dataset: DatasetParams) -> str:
    """What was dropped and why, for the console: "dropped 3 without a label ('분류'), 1 empty"."""
    parts = [f"{stats['dropped_missing_text']:,} without a text key" if stats.get("dropped_missing_text") else "",
             f"{stats['dropped_missing_label']:,} without a label ({label_column(dataset)!r})"
             if stats["dropped_missing_label"] else "",
             f"{stats['dropped_by_class_filter']:,} outside dataset.classes"
             if stats["dropped_by_class_filter"] else "",
             f"{stats['dropped_empty_text']:,} empty",
             f"{stats['dropped_no_tokens_after_filters']:,} with no tokens left after the filters"
             if stats["dropped_no_tokens_after_filters"] else ""]
    return "dropped " + ", ".join(p for p in parts if p)


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

    with reading(path, "tokenize"):
        raw = (pq.read_schema(path).metadata or {}).get(PREPROCESS_KEY)
        spec = None if raw is None else json.loads(raw)
    if spec is None:
        raise DataError(f"{path}: has no preprocessing spec (written by an older version); run the "
                        "tokenize stage again (dvc repro tokenize)")
    return spec


def write_tokens(table: pd.DataFrame, target: Path, preprocess: dict) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow = pa.table({
        "id": pa.array(table["id"].astype(str).tolist(), pa.string()),
        "label": pa.array(table["label"].astype(str).tolist(), pa.string()),
        "split": pa.array(table["split"].astype(str).tolist(), pa.string()),
        "tokens": pa.array(table["tokens"].tolist(), pa.list_(pa.string())),
        "length": pa.array(table["length"].to_numpy(), pa.int32()),
        TEXT_KEY: pa.array(table[TEXT_KEY].astype(str).tolist(), pa.string()),
    })
    arrow = arrow.replace_schema_metadata({PREPROCESS_KEY: json.dumps(preprocess, ensure_ascii=False)})
    with atomic_file(target) as tmp:
        pq.write_table(arrow, tmp)

def read_tokens(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path}: missing; run the tokenize stage first (dvc repro tokenize)")
    with reading(path, "tokenize"):
        return pd.read_parquet(path)
