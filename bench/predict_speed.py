"""Prediction speed: `pipeline.predict` against the tutorials' way of labelling new reviews.

    python bench/predict_speed.py --input ../shared/data/nsmc/ratings_train.txt --rows 50000

Set-up (not timed): the first --train-rows reviews are tokenized, prepared and trained on for one
epoch with params.yaml's model and preprocessing (Okt, bidirectional GRU, maxlen 300), and saved as
a model bundle, as the train stage saves one. Then, in this one process, on the file's last --rows
reviews (never trained on):
  ours      predict_file: the predict CLI's own loop (batches of 2,000, Okt once per distinct word,
            rows sorted by length and padded per batch), CSV in, CSV out
  tutorial  the tutorials' `sentiment_predict(sentence)` once per review: Okt on the sentence,
            ids, pad_sequences to maxlen, model.predict on one row (timed on --naive-rows)
  batched   the same Okt call per review, then one model.predict over all rows padded to maxlen
            (timed on --batched-rows)
It prints documents per second for each, the ratios, the largest probability difference between
ours and the tutorial loop on the same reviews (the same preprocessing gives the same answers),
and our accuracy on the labelled reviews.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench.record import command_line, figure, record  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def build_bundle(source: Path, train_rows: int, workdir: Path) -> Path:
    """An NSMC model bundle trained for one epoch, made once and reused (workdir/models)."""
    import tensorflow as tf

    from pipeline.core import paths
    from pipeline.core.config import parse_params, read_yaml
    from pipeline.data.prepared import Prepared
    from pipeline.data.splits import prepare
    from pipeline.model.training import fit
    from pipeline.serve.bundle import save_bundle
    from pipeline.stages.prepare import write_outputs
    from pipeline.text.documents import preprocess_spec
    from pipeline.text.tokenizer import tokenize_texts

    bundle = workdir / "models"
    if (bundle / "model.keras").is_file():
        return bundle
    # params.yaml as it stands (the default model, Okt, maxlen), on NSMC, one epoch.
    raw = read_yaml(REPO / "params.yaml")   # as the stages (and DVC) read it
    raw["dataset"].update(name="nsmc", classes=[])
    raw["train"].update(epochs=1, use_tuned=False)
    params = parse_params(raw)
    docs = pd.read_csv(source, sep="\t", dtype=str, keep_default_na=False, nrows=train_rows)
    docs = docs.rename(columns={"document": "text"})
    tokens, _ = tokenize_texts(docs["text"].tolist(), params.tokenize, REPO / ".cache/tokenize/analysis.sqlite")
    keep = [i for i, t in enumerate(tokens) if t]
    table = pd.DataFrame({"id": docs["id"].iloc[keep].values, "label": docs["label"].iloc[keep].values,
                          "split": "", "tokens": [tokens[i] for i in keep]})
    arrays, vocab, labels, stats = prepare(table, params.prepare)
    os.chdir(workdir)   # write_outputs writes data/prepared under the working folder
    write_outputs(arrays, vocab, labels, stats, params, preprocess_spec(params.tokenize, frozenset(), docs))
    data = Prepared(arrays["train"], arrays["val"], len(vocab), labels, params.prepare.padding,
                    params.prepare.maxlen, params.prepare.truncating)
    print(f"set-up: training the default model for one epoch on {len(arrays['train']['y']):,} reviews",
          file=sys.stderr)
    result = fit(data, params.train, tf.distribute.get_strategy())
    bundle.mkdir(parents=True, exist_ok=True)
    save_bundle(bundle, result.model, paths.PREPARED_DIR, params.train)
    return bundle


def tutorial_encode(texts: list[str], okt, normalize, drop: set[str], vocab: dict, maxlen: int) -> np.ndarray:
    """Okt once per review on the whole sentence, then ids padded to maxlen ("pre", as prepared)."""
    x = np.zeros((len(texts), maxlen), np.int32)
    for row, text in enumerate(texts):
        words = [w for w, tag in okt.pos(normalize(text)[0], stem=True) if tag not in drop]
        ids = [vocab.get(w, 1) for w in words][-maxlen:]
        if ids:
            x[row, maxlen - len(ids):] = ids
    return x


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", required=True, type=Path, help="NSMC ratings TSV (id, document, label)")
    ap.add_argument("--rows", type=int, default=50000, help="reviews to label (the file's last ones)")
    ap.add_argument("--train-rows", type=int, default=40000, help="reviews the set-up model trains on")
    ap.add_argument("--naive-rows", type=int, default=300, help="reviews for the one-by-one tutorial loop")
    ap.add_argument("--batched-rows", type=int, default=5000, help="reviews for the batched baseline")
    ap.add_argument("--workdir", type=Path, default=REPO / ".cache" / "bench-predict")
    ap.add_argument("--no-record", action="store_true", help="do not write bench/results/predict.json")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    source = args.input.resolve()

    bundle = build_bundle(source, args.train_rows, args.workdir.resolve())
    everything = pd.read_csv(source, sep="\t", dtype=str, keep_default_na=False)
    if len(everything) < args.train_rows + args.rows:
        print(f"note: rows {args.rows:,} overlap the {args.train_rows:,} training rows", file=sys.stderr)
    reviews = everything.tail(args.rows).reset_index(drop=True)
    unseen = args.workdir / "reviews.tsv"
    reviews.to_csv(unseen, sep="\t", index=False)

    from pipeline.serve.predict import predict_file
    from pipeline.serve.predictor import Classifier
    from pipeline.text.normalize import Normalizer

    started = time.perf_counter()
    classifier = Classifier.load(bundle)
    classifier.warm_up()
    load_seconds = time.perf_counter() - started
    summary = predict_file(unseen, args.workdir / "predictions.csv", classifier.predict, text_column="document",
                           progress=False)
    ours = summary["docs_per_second"]
    out = pd.read_csv(args.workdir / "predictions.csv", dtype={"id": str, "label": str, "predicted": str})
    accuracy = float((out["predicted"] == out["label"]).mean())

    # The tutorial loop, with the same analyzer, filters, vocabulary and model.
    from keras.utils import pad_sequences
    from konlpy.tag import Okt

    okt, encoder = Okt(), classifier.encoder   # the JVM is up already (warm_up)
    cfg = encoder.tokenize
    normalize = Normalizer(cfg.unicode, cfg.lowercase, cfg.strip_html, cfg.clean_pattern, cfg.max_chars)
    drop, model, maxlen = set(encoder.tokenize.pos_drop), classifier.model, encoder.maxlen
    texts = reviews["document"].tolist()
    sample = texts[: args.naive_rows]
    probabilities = []
    started = time.perf_counter()
    for text in sample:   # def sentiment_predict(new_sentence): ... model.predict(pad_new)
        x = tutorial_encode([text], okt, normalize, drop, encoder.vocab, maxlen)
        probabilities.append(float(model.predict(pad_sequences(x, maxlen=maxlen), verbose=0)[0, 0]))
    tutorial_seconds = time.perf_counter() - started
    tutorial = len(sample) / tutorial_seconds
    difference = float(np.max(np.abs(np.array(probabilities) - out["proba_1"].to_numpy()[: len(sample)])))

    batch = texts[: args.batched_rows]
    started = time.perf_counter()
    x = tutorial_encode(batch, okt, normalize, drop, encoder.vocab, maxlen)
    model.predict(x, batch_size=256, verbose=0)
    batched_seconds = time.perf_counter() - started
    batched = len(batch) / batched_seconds

    print(json.dumps({"cores": os.cpu_count(), "rows": summary["rows"], "maxlen": maxlen,
                      "model_load_seconds": round(load_seconds, 1), "ours_seconds": round(summary["seconds"], 1),
                      "ours_docs_per_s": round(ours), "tutorial_docs_per_s": round(tutorial, 1),
                      "tutorial_rows": len(sample), "tutorial_seconds": round(tutorial_seconds, 1),
                      "batched_docs_per_s": round(batched), "batched_rows": len(batch),
                      "batched_seconds": round(batched_seconds, 1), "max_probability_difference": difference,
                      "accuracy_on_labelled_rows": round(accuracy, 4)}, indent=2))
    print(f"speedup {ours / tutorial:.1f}x over the tutorial loop, {ours / batched:.1f}x over the batched one")
    if not args.no_record:   # the figures just printed, as printed
        record("predict", [
            figure("tutorial loop", len(sample), "documents"),
            figure("tutorial loop", round(tutorial_seconds, 1), "s"),
            figure("tutorial loop", round(tutorial, 1), "docs/s", 1),
            figure("batched tutorial", len(batch), "documents"),
            figure("batched tutorial", round(batched_seconds, 1), "s"),
            figure("batched tutorial", round(batched), "docs/s", round(batched / tutorial, 1)),
            figure("pipeline.predict", summary["rows"], "documents"),
            figure("pipeline.predict", round(summary["seconds"], 1), "s"),
            figure("pipeline.predict", round(ours), "docs/s", round(ours / tutorial, 1)),
            figure("pipeline.predict over batched tutorial", round(ours / batched, 1), "x"),
            figure("largest probability difference, pipeline.predict against the tutorial loop", difference, ""),
            figure("pipeline.predict on the labelled rows", round(accuracy, 4), "accuracy"),
            figure("model load and warm-up (not timed above)", round(load_seconds, 1), "s"),
        ], command_line(), notes=[f"model: maxlen {maxlen}, trained for one epoch on the first {args.train_rows:,} "
                                  "reviews during set-up (not timed)"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
