"""prepare stage: stratified train/val/test split, subword model (prepare.subword) and vocabulary on the
training split only, encode, pad.

Outputs data/prepared/{train,val,test}.npz (x: int32 [n, maxlen], y: int32, length: tokens kept
after truncation, raw_length: tokens before it, id), vocab.json (token -> id; PAD=0, OOV=1),
labels.json (class id -> label), params.json, preprocess.json (how raw text becomes tokens, from
tokens.parquet, and the subword model if any: what a model needs to label new text);
data/prepare_stats.json (class counts per split, OOV rate, length percentiles, to choose maxlen; the
subword model's size and pieces per document) and data/plots/lengths.csv (a DVC plot). With a
subword model, "tokens" in the arrays and stats are its pieces.
"""
from __future__ import annotations

import sys

from pipeline.core import log, paths, recording
from pipeline.core.atomic import atomic_file, write_json
from pipeline.core.cli import run_stage, stage_parser
from pipeline.core.config import Params, to_dict
from pipeline.core.errors import DataError
from pipeline.data.downloads import dataset_record
from pipeline.data.prepared import write_prepared
from pipeline.data.sequences import length_histogram
from pipeline.data.splits import TEXT_KEY, prepare_all
from pipeline.data.subword import Subword
from pipeline.text.documents import read_preprocess_spec, read_tokens

READS = ("prepare",)


def write_outputs(arrays: dict, vocab: dict, names: list[str], stats: dict, params: Params,
                  preprocess: dict, subword: Subword | None = None) -> None:
    record = {"dataset": dataset_record(params.dataset), "tokenize": to_dict(params.tokenize),
              "prepare": to_dict(params.prepare)}
    write_prepared(paths.PREPARED_DIR, arrays, vocab, names, record, preprocess, subword)
    write_json(paths.PREPARE_STATS, stats)
    with atomic_file(paths.LENGTHS_PLOT) as tmp:
        tmp.write_text(length_histogram(arrays["train"]["raw_length"], params.prepare.maxlen))


def _body(params: Params, args) -> None:
    tokens = read_tokens(paths.TOKENS)
    if TEXT_KEY not in tokens.columns:   # the key that keeps copies of a text in one split
        raise DataError(f"{paths.TOKENS}: has no {TEXT_KEY} column (written by an older version); run the "
                        "tokenize stage again (dvc repro tokenize)")
    preprocess = read_preprocess_spec(paths.TOKENS)
    done = prepare_all(tokens, params.prepare)
    write_outputs(done.arrays, done.vocab, done.names, done.stats, params, preprocess, done.subword)
    recording.record_prepare(done.stats, done.arrays["train"]["raw_length"], params.prepare.maxlen)
    _report(done.stats, done.names, done.vocab, params.prepare.maxlen, done.subword is not None)


def _report(stats: dict, names: list[str], vocab: dict, maxlen: int, subword: bool) -> None:
    s = stats["splits"]
    log.info(f"prepare: train {s['train']['rows']:,} / val {s['val']['rows']:,} / test {s['test']['rows']:,} "
             f"({stats['test_split']} test), {len(names)} classes, vocab {len(vocab):,}, "
             f"maxlen {maxlen} covers {stats['maxlen_covers_train_rows']:.1%} of train rows "
             f"(p95 length {s['train']['length']['p95']:g}) -> {paths.PREPARED_DIR}")
    if subword:
        sub = stats["subword"]
        log.info(f"prepare: subword {sub['model']}: {sub['pieces']:,} pieces trained on the train split, "
                 f"{sub['train_pieces_per_token']:g} per token, {sub['train_pieces_per_document']:g} per train row")


def main(argv: list[str] | None = None) -> int:
    return run_stage("prepare", _body, stage_parser("python -m pipeline.prepare", __doc__), argv, reads=READS)


if __name__ == "__main__":
    sys.exit(main())
