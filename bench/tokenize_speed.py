"""Tokenize speed: the tutorial loop against the tokenize stage's code, same rows, same options.

    python bench/tokenize_speed.py --input ../shared/data/nsmc/ratings_train.txt --rows 20000

Baseline: `[Okt().morphs(t, stem=True) for t in texts]` in this process. Ours: the stage's
`tokenize_texts` with analyzer okt, stem, no normalisation or filters, an empty cache (cold), then
again after changing only the POS filter and stopwords (re-run). Checks the cold tokens equal the
baseline's, prints the timings, and as its last line `speedup <cold ratio>`.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.record import command_line, figure, record  # noqa: E402
from pipeline.core.config import TokenizeParams  # noqa: E402
from pipeline.text.tokenizer import tokenize_texts  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", required=True, help="NSMC-style TSV (id, document, label)")
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--workers", type=int, default=0, help="tokenize.workers (0: one per core)")
    ap.add_argument("--no-record", action="store_true", help="do not write bench/results/tokenize.json")
    args = ap.parse_args()

    table = pd.read_csv(args.input, sep="\t", quoting=3, nrows=args.rows)
    texts = [t for t in table["document"].fillna("").astype(str) if t.strip()]
    print(f"rows: {len(texts):,} non-empty of {len(table):,}; {len(set(texts)):,} unique; "
          f"cores: {os.cpu_count()}")

    from konlpy.tag import Okt
    t0 = time.perf_counter()
    baseline = [Okt().morphs(t, stem=True) for t in texts]
    t_base = time.perf_counter() - t0
    print(f"baseline (tutorial loop, 1 process): {t_base:8.2f} s  {len(texts) / t_base:8.0f} docs/s")

    cfg = TokenizeParams(unicode="none", analyzer="okt", norm=False, stem=True, pos_drop=(),
                         max_chars=10**6, workers=args.workers)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "analysis.sqlite"
        t0 = time.perf_counter()
        ours, report = tokenize_texts(texts, cfg, cache, progress=False)
        t_cold = time.perf_counter() - t0
        cold_report = report
        print(f"tokenize stage, cold cache:          {t_cold:8.2f} s  {len(texts) / t_cold:8.0f} docs/s"
              f"  ({report.workers_used} {report.worker_kind}s, {report.unique_texts:,} unique texts, "
              f"{report.analysed:,} unique words analysed)")
        mismatches = sum(a != (b or []) for a, b in zip(baseline, ours))
        print(f"token lists identical to the baseline: {len(texts) - mismatches:,} of {len(texts):,}")
        if mismatches:
            print("FAIL: tokens differ from the baseline", file=sys.stderr)
            return 1

        rerun_cfg = cfg.model_copy(update={"pos_drop": ("Josa", "Punctuation")})
        t0 = time.perf_counter()
        filtered, report = tokenize_texts(texts, rerun_cfg, cache, stopwords=frozenset({"영화", "하다"}),
                                          progress=False)
        t_warm = time.perf_counter() - t0
        print(f"re-run, new POS filter + stopwords:  {t_warm:8.2f} s  ({report.analysed:,} analysed, "
              f"{report.cache_hits:,} from cache)")
    print(f"speedup_rerun {t_base / t_warm:.2f}")
    print(f"speedup {t_base / t_cold:.2f}")
    if not args.no_record:   # the figures just printed, as printed
        record("tokenize", [
            figure("tutorial loop", round(t_base, 2), "s", 1),
            figure("tutorial loop", round(len(texts) / t_base), "docs/s"),
            figure("tokenize stage, empty cache", round(t_cold, 2), "s", round(t_base / t_cold, 2)),
            figure("tokenize stage, empty cache", round(len(texts) / t_cold), "docs/s"),
            figure("tokenize stage, re-run after changing only the POS filter and stopwords", round(t_warm, 2), "s",
                   round(t_base / t_warm, 2)),
            figure("token lists identical to the baseline", len(texts) - mismatches, f"of {len(texts):,}"),
        ], command_line(), notes=[
            f"rows: {len(texts):,} non-empty of {len(table):,}; {len(set(texts)):,} unique",
            f"empty cache: {cold_report.workers_used} {cold_report.worker_kind}s, {cold_report.unique_texts:,} "
            f"unique texts, {cold_report.analysed:,} unique words analysed",
            f"re-run: {report.analysed:,} analysed, {report.cache_hits:,} from cache",
        ])
    return 0


if __name__ == "__main__":
    sys.exit(main())
