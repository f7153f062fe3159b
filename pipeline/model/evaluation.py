"""A trained model on the test split: scores (loss, accuracy, macro-F1, per class), ROC, plots."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pipeline.core.atomic import atomic_file, write_png
from pipeline.core.errors import StageError
from pipeline.core.plotting import hangul_font
from pipeline.data.sequences import shorten
from pipeline.model.files import load_model_file
from pipeline.model.inference import predict_proba


def scores(y: np.ndarray, proba: np.ndarray, labels: list[str]) -> dict:
    from sklearn.metrics import accuracy_score, f1_score, log_loss, precision_recall_fscore_support

    pred = proba.argmax(1)
    ids = list(range(len(labels)))
    p, r, f, support = precision_recall_fscore_support(y, pred, labels=ids, zero_division=0)
    metrics = {"test/loss": float(log_loss(y, np.clip(proba, 1e-7, 1), labels=ids)),
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


def write_plots(y: np.ndarray, proba: np.ndarray, labels: list[str], folder: Path) -> float:
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
    ax.set_title("confusion matrix (test)")
    fig.tight_layout()
    write_png(fig, folder / "confusion.png", dpi=100)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(fpr, tpr, label=f"AUC {area:.3f}")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC (test)" + ("" if proba.shape[1] == 2 else ", micro-average"))
    ax.legend(loc="lower right")
    write_png(fig, folder / "roc.png", dpi=100)
    return area


def _trained_maxlen(model_dir: Path) -> int:
    record = model_dir / "params.json"
    if not record.is_file():
        return 0
    return int(json.loads(record.read_text(encoding="utf-8")).get("train", {}).get("maxlen", 0) or 0)


def evaluate(model_dir: Path, prepared_dir: Path, batch_size: int) -> tuple[dict, np.ndarray, np.ndarray, list[str]]:
    if not (model_dir / "model.keras").is_file():
        raise StageError(f"{model_dir}/model.keras: missing; run the train stage first (dvc repro train)")
    model = load_model_file(model_dir / "model.keras",
                            "rebuild it with `dvc repro train` or `dvc checkout models`")
    labels = json.loads((model_dir / "labels.json").read_text(encoding="utf-8"))
    prep = json.loads((prepared_dir / "params.json").read_text(encoding="utf-8"))["prepare"]
    with np.load(prepared_dir / "test.npz") as test:
        split = dict(test)
    # The model's own cut: train.maxlen (possibly tuned) can be shorter than prepare.maxlen.
    maxlen = _trained_maxlen(model_dir)
    if maxlen:
        split = shorten(split, maxlen, prep["padding"], prep.get("truncating", "pre"))
    x, y, lengths = split["x"], split["y"], split["length"]
    proba = predict_proba(model, x, lengths, prep["padding"], batch_size)
    return scores(y, proba, labels), y, proba, labels
