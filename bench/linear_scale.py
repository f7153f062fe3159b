"""The linear candidate at scale: TF-IDF + liblinear (today's) against hashed n-grams + SGD out of core.

  python bench/linear_scale.py --nsmc ../shared/data/nsmc/ratings_train.txt \\
      --imdb ../shared/data/imdb/aclImdb_train_test.tar.gz --copies 8

Token lists as the pipeline makes them: NSMC's 150,000 training reviews with the mecab analyzer and
no POS filter (experiments/nsmc-best.yaml), IMDB's 25,000 official training reviews (not its test
split) with the english analyzer, lower-cased, HTML removed (experiments/imdb-best.yaml); each is
written as a tokens.parquet. x1: a stratified --held-out share of the rows is held out and each model
is fitted on the rest (params.yaml's champion.linear) and scored on it. xk: --copies copies of
NSMC, each text given one extra token of its copy's (so no two rows are the same text), fitted for
time and memory only: the copies are near-duplicates across any split, so an accuracy there says
nothing. Each fit runs in its own process (this script with --child), which reads the token lists
(TF-IDF: all of them into memory, as the train stage does; hashed: streamed from the parquet
file in record batches), fits, and reports its seconds (reading included) and its peak RSS
(VmHWM). Ratios: against TF-IDF + liblinear (= 1) on the same rows; time and memory are how many
times less, accuracy is the difference.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.record import command_line, figure, record  # noqa: E402

KINDS = {"tfidf": "TF-IDF + liblinear", "hashed": "hashed + SGD"}


def write_tokens(path: Path, ids: list[str], tokens: list[list[str]], copies: int = 1) -> None:
    """tokens.parquet (id, tokens), one row group per copy; copy c > 0 adds the token <copy c>."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("id", pa.string()), ("tokens", pa.list_(pa.string()))])
    with pq.ParquetWriter(path, schema) as writer:
        for c in range(copies):
            extra = [f"<copy{c}>"] if c else []
            writer.write_table(pa.table({"id": [i if not c else f"{i}#{c}" for i in ids],
                                         "tokens": [t + extra for t in tokens]}, schema=schema))


def nsmc(path: Path, rows: int) -> tuple[list[str], list[list[str]], np.ndarray]:
    import pandas as pd

    from pipeline.core.config import TokenizeParams
    from pipeline.text.tokenizer import tokenize_texts

    table = pd.read_csv(path, sep="\t", quoting=3, dtype={"id": str}, nrows=rows or None)
    tokens, _ = tokenize_texts(table["document"].fillna("").astype(str).tolist(),
                               TokenizeParams(analyzer="mecab", pos_drop=()), None, progress=False)
    keep = [k for k, t in enumerate(tokens) if t]
    return ([str(table["id"].iloc[k]) for k in keep], [tokens[k] for k in keep],
            table["label"].to_numpy()[keep].astype(np.int64))


def imdb(path: Path, rows: int) -> tuple[list[str], list[list[str]], np.ndarray]:
    from pipeline.core.config import TokenizeParams
    from pipeline.data.readers import read_imdb
    from pipeline.text.tokenizer import tokenize_texts

    docs = read_imdb({"archive": path})
    docs = docs[docs["split"] == "train"].reset_index(drop=True)
    if rows:
        docs = docs.sample(n=min(rows, len(docs)), random_state=0).reset_index(drop=True)
    cfg = TokenizeParams(analyzer="english", lowercase=True, strip_html=True, stem=False, pos_drop=())
    tokens, _ = tokenize_texts(docs["text"].tolist(), cfg, None, progress=False)
    keep = [k for k, t in enumerate(tokens) if t]
    return ([str(docs["id"].iloc[k]) for k in keep], [tokens[k] for k in keep],
            (docs["label"].to_numpy()[keep] == "pos").astype(np.int64))


def child(kind: str, tokens_path: Path, split_path: Path, params: str) -> None:
    """One fit in this process; prints a JSON line: seconds, accuracy (when there are held-out rows), peak MB."""
    from pipeline.core.config import load_params
    from pipeline.model import linear as lin

    cfg = load_params(params).champion.linear
    with np.load(split_path) as arrays:
        fit_ids, fit_y, held_ids, held_y = (arrays[k] for k in ("fit_ids", "fit_y", "held_ids", "held_y"))
    labels = ["0", "1"]
    started = time.perf_counter()
    if kind == "tfidf":
        by_id = lin.read_token_lists(tokens_path)
        rows = lin.SplitRows(fit_ids, fit_y, [by_id[i] for i in fit_ids.tolist()])
        model = lin.fit_linear(cfg.model_copy(update={"out_of_core_above": 10**12}), rows, labels)
    else:
        by_id = None
        rows = lin.SplitRows(fit_ids, fit_y, [])
        model = lin.fit_linear(cfg.model_copy(update={"out_of_core_above": 0}), rows, labels, tokens_path)
    seconds = time.perf_counter() - started
    accuracy = None
    if len(held_ids):
        if by_id is None:
            import pyarrow.parquet as pq

            held = set(held_ids.tolist())
            table = pq.read_table(tokens_path, columns=["id", "tokens"], filters=[("id", "in", list(held))])
            by_id = dict(zip(table.column("id").to_pylist(), table.column("tokens").to_pylist()))
        proba = model.predict_proba([list(by_id[i]) for i in held_ids.tolist()])
        accuracy = float((proba.argmax(1) == held_y).mean())
    peak_mb = peak_rss_mb()
    print(json.dumps({"seconds": seconds, "accuracy": accuracy, "peak_mb": peak_mb}))


def peak_rss_mb() -> float:
    """This process's peak RSS: VmHWM (getrusage's ru_maxrss would count the parent's at the fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(kind: str, tokens_path: Path, split_path: Path, params: str, timeout: float) -> dict | None:
    try:
        done = subprocess.run([sys.executable, __file__, "--child", kind, str(tokens_path), str(split_path),
                               "--params", params], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"  {kind}: over {timeout:.0f} s, stopped", file=sys.stderr)
        return None
    if done.returncode:
        raise SystemExit(f"{kind} on {tokens_path}: failed\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nsmc", type=Path, default=Path("../shared/data/nsmc/ratings_train.txt"))
    ap.add_argument("--imdb", type=Path, default=Path("../shared/data/imdb/aclImdb_train_test.tar.gz"))
    ap.add_argument("--copies", type=int, default=8, help="NSMC copies for time and memory")
    ap.add_argument("--held-out", type=float, default=0.1, help="the stratified share scored at x1")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--rows", type=int, default=0, help="the first rows only (a smoke test; 0: all)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds before a fit is stopped")
    ap.add_argument("--no-record", action="store_true", help="do not write bench/results/linear.json")
    ap.add_argument("--child", nargs=3, metavar=("KIND", "TOKENS", "SPLIT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]), args.params)
        return 0
    from sklearn.model_selection import train_test_split

    results: list[tuple[str, str, dict | None]] = []

    def measure(name: str, tokens_path: Path, split_path: Path) -> None:
        """Each kind's fit of these rows, in a process of its own."""
        for kind in KINDS:
            results.append((name, kind, run_child(kind, tokens_path, split_path, args.params, args.timeout)))
            print(f"  {name} {kind}: {results[-1][2]}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        for name, reader, source in (("NSMC x1", nsmc, args.nsmc), ("IMDB x1", imdb, args.imdb)):
            started = time.perf_counter()
            ids, tokens, y = reader(source, args.rows)
            print(f"{name}: {len(ids):,} rows tokenized in {time.perf_counter() - started:.0f} s", file=sys.stderr)
            index = np.arange(len(ids))
            fit, held = train_test_split(index, test_size=args.held_out, stratify=y, random_state=0)
            ids_arr = np.asarray(ids)
            tokens_path, split_path = Path(tmp) / f"{name[:4]}.parquet", Path(tmp) / f"{name[:4]}.npz"
            write_tokens(tokens_path, ids, tokens)
            np.savez(split_path, fit_ids=ids_arr[fit], fit_y=y[fit], held_ids=ids_arr[held], held_y=y[held])
            measure(name, tokens_path, split_path)
            if name == "NSMC x1" and args.copies > 1:
                k = args.copies
                big, big_split = Path(tmp) / "nsmc-copies.parquet", Path(tmp) / "nsmc-copies.npz"
                write_tokens(big, ids, tokens, k)
                copy_ids = np.concatenate([ids_arr] + [np.char.add(ids_arr, f"#{c}") for c in range(1, k)])
                np.savez(big_split, fit_ids=copy_ids, fit_y=np.tile(y, k), held_ids=np.array([], dtype=str),
                         held_y=np.array([], dtype=np.int64))
                nsmc_copies = (f"NSMC x{k}", big, big_split, len(copy_ids))
            del ids, tokens
        if args.copies > 1:
            name, big, big_split, n = nsmc_copies
            print(f"{name}: {n:,} rows", file=sys.stderr)
            measure(name, big, big_split)

    figures = []
    print(f"{'rows':10} {'model':20} {'seconds':>8} {'x less':>7} {'peak MB':>8} {'x less':>7} "
          f"{'accuracy':>9} {'diff':>8}")
    for name in dict.fromkeys(r[0] for r in results):
        base = next(r[2] for r in results if r[0] == name and r[1] == "tfidf")
        for _, kind, got in (r for r in results if r[0] == name):
            what = f"{name} | {KINDS[kind]}"
            if got is None:
                print(f"{name:10} {KINDS[kind]:20} {'> ' + str(int(args.timeout)):>8}")
                continue
            t_ratio = base["seconds"] / got["seconds"] if base else None
            m_ratio = base["peak_mb"] / got["peak_mb"] if base else None
            acc = got["accuracy"]
            diff = acc - base["accuracy"] if base and acc is not None else None
            print(f"{name:10} {KINDS[kind]:20} {got['seconds']:8.1f} {t_ratio or 0:7.2f} {got['peak_mb']:8.0f} "
                  f"{m_ratio or 0:7.2f} {acc if acc is not None else float('nan'):9.4f} "
                  f"{diff if diff is not None else float('nan'):+8.4f}")
            if not name.startswith("IMDB"):   # IMDB is there for the accuracy
                figures.append(figure(f"{what} | fit seconds", round(got["seconds"], 1), "s",
                                      round(t_ratio, 2) if t_ratio else None))
                figures.append(figure(f"{what} | peak RSS", round(got["peak_mb"]), "MB",
                                      round(m_ratio, 2) if m_ratio else None))
            if acc is not None:
                figures.append(figure(f"{what} | held-out accuracy", round(acc, 4), "", None))
    if not args.no_record:
        record("linear", figures, command_line(), notes=[
            f"x1: fitted on a stratified {1 - args.held_out:.0%}, scored on the rest; x{args.copies}: NSMC copies, "
            "one extra token per copy, time and memory only",
            "seconds include reading the tokens; peak RSS: the fit's process (VmHWM); ratio: times less"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
