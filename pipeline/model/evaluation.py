"""A trained model on the test split: scores (loss, accuracy, macro-F1, per class), ROC, plots, and
the most confident mistakes with their text."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import numpy as np

from pipeline.core.atomic import atomic_file, write_png
from pipeline.core.config import DatasetParams
from pipeline.core.errors import StageError, reading
from pipeline.core.plotting import hangul_font
from pipeline.core.records import PARAMS_FILE, read_model_record
from pipeline.data.prepared import Cut, read_cut
from pipeline.data.sequences import shorten
from pipeline.model.files import load_model_file
from pipeline.model.inference import predict_proba

if TYPE_CHECKING:
    import pandas as pd

MISTAKE_COLUMNS = ["id", "text", "actual", "predicted", "probability"]


def scores(y: np.ndarray, proba: np.ndarray, labels: list[str]) -> dict:
    from sklearn.metrics import accuracy_score, f1_score, log_loss, precision_recall_fscore_support

    pred = proba.argmax(1)
    ids = list(range(len(labels)))
    p, r, f, support = precision_recall_fscore_support(y, pred, labels=ids, zero_division=0)
    # Clipped so a confident miss costs at most -log(1e-7), then each row divided by its sum again:
    # the clip alone lifts a many-class row's sum past what log_loss allows ("do not sum to one").
    clipped = np.clip(np.asarray(proba, np.float64), 1e-7, 1)
    metrics = {"test/loss": float(log_loss(y, clipped / clipped.sum(1, keepdims=True), labels=ids)),
               "test/accuracy": float(accuracy_score(y, pred)),
               "test/macro_f1": float(f1_score(y, pred, labels=ids, average="macro", zero_division=0)),
               "test/rows": int(len(y))}
    per_class = {label: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                         "support": int(support[i])} for i, label in enumerate(labels)}
    return {**metrics, "test/per_class": per_class}


def roc_points(y: np.ndarray, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    from sklearn.metrics import auc, roc_curve

    if proba.shape[1] == 2:
        fpr, tpr, _ = roc_curve(y, proba[:, 1])
    else:   # one-vs-rest, micro-averaged over every (row, class) pair
        onehot = np.eye(proba.shape[1])[y]
        fpr, tpr, _ = roc_curve(onehot.ravel(), proba.ravel())
    return fpr, tpr, float(auc(fpr, tpr))


def write_plots(y: np.ndarray, proba: np.ndarray, labels: list[str], folder: Path, title: str = "test",
                curves: Mapping[str, np.ndarray] | None = None) -> float:
    """confusion.csv / roc.csv (DVC plots) and confusion.png of the served model's `proba`; roc.png with
    one curve per entry of `curves` (every candidate), else the served model's alone. Its ROC AUC."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import confusion_matrix

    pred = proba.argmax(1)
    with atomic_file(folder / "confusion.csv") as tmp:
        tmp.write_text("actual,predicted\n" + "".join(f"{labels[a]},{labels[b]}\n" for a, b in zip(y, pred)),
                       encoding="utf-8")
    fpr, tpr, area = roc_points(y, proba)
    with atomic_file(folder / "roc.csv") as tmp:
        tmp.write_text("fpr,tpr\n" + "".join(f"{a:.6f},{b:.6f}\n" for a, b in zip(fpr, tpr)))

    matrix = confusion_matrix(y, pred, labels=list(range(len(labels))))
    plt.rcParams["font.family"] = hangul_font() or plt.rcParams["font.family"]
    fig, ax = plt.subplots(figsize=(1.2 * len(labels) + 3, 1.0 * len(labels) + 2.5))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v > matrix.max() / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(f"confusion matrix ({title})")
    fig.tight_layout()
    write_png(fig, folder / "confusion.png", dpi=100)
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, p in (curves or {title: proba}).items():
        a, b, under = roc_points(y, p)
        ax.plot(a, b, label=f"{name}: AUC {under:.3f}")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC (test)" + ("" if proba.shape[1] == 2 else ", micro-average"))
    ax.legend(loc="lower right")
    write_png(fig, folder / "roc.png", dpi=100)
    return area


def model_cut(model_dir: Path, prepared_dir: Path) -> Cut:
    """The model's own cut (train.maxlen, possibly tuned, can be shorter than prepare.maxlen), from
    its params.json; a model folder without one was trained on the prepared data as it is."""
    if (model_dir / PARAMS_FILE).is_file():
        return Cut.of_model(read_model_record(model_dir))
    return read_cut(prepared_dir)


def evaluate(model_dir: Path, prepared_dir: Path, batch_size: int) -> tuple[dict, np.ndarray, np.ndarray, list[str]]:
    """scores() of the model on the test split, its labels y, its probabilities, the label names."""
    if not (model_dir / "model.keras").is_file():
        raise StageError(f"{model_dir}/model.keras: missing; run the train stage first (dvc repro train)")
    model = load_model_file(model_dir / "model.keras",
                            "rebuild it with `dvc repro train` or `dvc checkout models`")
    with reading(model_dir / "labels.json", "train", model_dir):
        labels = json.loads((model_dir / "labels.json").read_text(encoding="utf-8"))
    cut = model_cut(model_dir, prepared_dir)
    with reading(prepared_dir / "test.npz", "prepare", prepared_dir), np.load(prepared_dir / "test.npz") as test:
        split = shorten(dict(test), cut.maxlen, cut.padding, cut.truncating)
    x, y, lengths = split["x"], split["y"], split["length"]
    proba = predict_proba(model, x, lengths, cut.padding, batch_size)
    return scores(y, proba, labels), y, proba, labels


def mistakes(ids: np.ndarray, y: np.ndarray, proba: np.ndarray, labels: list[str], texts: Mapping[str, str],
             limit: int) -> pd.DataFrame:
    """The `limit` most confident wrong predictions, most confident first (ties in split order):
    id, text, actual label, predicted label, probability of the prediction."""
    import pandas as pd

    pred = proba.argmax(1)
    confidence = proba[np.arange(len(pred)), pred]
    wrong = np.flatnonzero(pred != y)
    rows = wrong[np.argsort(-confidence[wrong], kind="stable")][:limit]
    return pd.DataFrame({"id": [str(ids[i]) for i in rows], "text": [texts.get(str(ids[i]), "") for i in rows],
                         "actual": [labels[y[i]] for i in rows], "predicted": [labels[pred[i]] for i in rows],
                         "probability": [round(float(confidence[i]), 6) for i in rows]}, columns=MISTAKE_COLUMNS)


def raw_texts(ids: np.ndarray, raw_dir: Path, dataset: DatasetParams,
              tokens: Mapping[str, list[str]]) -> tuple[dict[str, str], bool]:
    """id -> the raw text (data/raw, as the download stage left it), and whether data/raw was read.

    Without data/raw (a stage run by hand after `dvc gc`, or a copy of the repo without it) the
    tokens joined by spaces stand in, which is still readable; so does any id the raw data lacks.
    """
    from pipeline.data.readers import load_documents

    wanted = {str(i) for i in ids}
    found: dict[str, str] = {}
    have_raw = (raw_dir / "manifest.json").is_file()
    if have_raw:
        docs = load_documents(raw_dir, dataset)
        docs = docs[docs["id"].isin(wanted)].drop_duplicates("id")
        found = dict(zip(docs["id"], docs["text"]))
    return {i: found.get(i) or " ".join(tokens.get(i, ())) for i in wanted}, have_raw


def write_mistakes(table: pd.DataFrame, target: Path) -> None:
    with atomic_file(target) as tmp:
        table.to_csv(tmp, index=False, encoding="utf-8")


def per_class_png(per_class: Mapping[str, Mapping[str, Mapping[str, float]]], target: Path) -> None:
    """F1 per class of each model (`per_class`: model name -> scores()'s test/per_class), grouped bars."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = next(iter(per_class.values()))
    labels = list(first)
    plt.rcParams["font.family"] = hangul_font() or plt.rcParams["font.family"]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.25 * len(per_class) * len(labels) + 2), 4.5))
    width = 0.8 / len(per_class)
    colours = ("#4c72b0", "#999999", "#55a868", "#c44e52")
    for k, (name, scores_) in enumerate(per_class.items()):
        ax.bar(np.arange(len(labels)) + (k - (len(per_class) - 1) / 2) * width,
               [scores_.get(c, {}).get("f1", 0.0) for c in labels], width, label=f"{name} F1",
               color=colours[k % len(colours)])
    support = [int(first[c].get("support", 0)) for c in labels]
    ax.set_xticks(range(len(labels)), [f"{c}\n({n})" for c, n in zip(labels, support)],
                  rotation=45 if len(labels) > 8 else 0, ha="right" if len(labels) > 8 else "center")
    ax.set_ylim(0, 1.15)
    ax.set_ylabel("F1")
    ax.set_title("F1 per class of each candidate (test; support in brackets)")
    ax.legend(loc="upper center", ncol=len(per_class), fontsize=8, frameon=False)
    fig.tight_layout()
    write_png(fig, target, dpi=100)
