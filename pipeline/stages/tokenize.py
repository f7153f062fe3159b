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

import sys
import time
from pathlib import Path

from pipeline.core import log, paths, recording
from pipeline.core.atomic import write_json
from pipeline.core.cli import run_stage, stage_parser
from pipeline.core.config import Params, to_dict
from pipeline.core.errors import DataError
from pipeline.data.downloads import dataset_record
from pipeline.data.readers import load_documents
from pipeline.text.documents import dropped_summary, preprocess_spec, tokenize_documents, write_tokens
from pipeline.text.tokenizer import load_stopwords

READS = ("dataset.name", "dataset.classes", "dataset.table.format", "dataset.table.text_columns",
         "dataset.table.label_column", "dataset.table.id_column", "dataset.table.encoding", "tokenize")


def _body(params: Params, args) -> None:
    t0 = time.perf_counter()
    cfg = params.tokenize
    stopwords = load_stopwords(cfg, Path(args.params).resolve().parent)
    docs = load_documents(paths.RAW_DIR, params.dataset)
    cache_path = None if args.no_cache else paths.cache_dir() / "tokenize" / "analysis.sqlite"
    table, stats = tokenize_documents(docs, params.dataset, cfg, cache_path, stopwords)
    if table.empty:
        raise DataError(f"{paths.RAW_DIR}: no documents left of {stats['rows_read']:,} ("
                        f"{dropped_summary(stats, params.dataset)}); check dataset.classes and "
                        "tokenize.clean_pattern / pos filters")
    stats["seconds"]["total"] = round(time.perf_counter() - t0, 3)
    stats["params"] = {"dataset": dataset_record(params.dataset), "tokenize": to_dict(cfg)}
    kept = docs[docs["label"].isin(params.dataset.classes)] if params.dataset.classes else docs
    write_tokens(table, paths.TOKENS, preprocess_spec(cfg, stopwords, kept))
    write_json(paths.TOKENIZE_STATS, stats)
    recording.record_tokenize(stats)
    _report(stats, params)


def _report(stats: dict, params: Params) -> None:
    unit = "distinct words" if stats["analysis_unit"] == "word" else "texts"
    log.info(f"tokenize: {stats['documents']:,} documents ({stats['unique_texts']:,} unique texts; "
             f"{stats['analysed']:,} {unit} analysed, {stats['cache_hits']:,} from cache); "
             f"{dropped_summary(stats, params.dataset)}; median {stats['length'].get('p50')} tokens -> "
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
