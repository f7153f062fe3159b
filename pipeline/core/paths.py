"""Every output path of the pipeline, relative to the repo root (the folder dvc.yaml is in).

dvc.yaml names the same paths; a test checks the two agree."""
from __future__ import annotations

import os
from pathlib import Path

RAW_DIR = Path("data/raw")
TOKENS = Path("data/tokens.parquet")
TOKENIZE_STATS = Path("data/tokenize_stats.json")
PREPARED_DIR = Path("data/prepared")
PREPARE_STATS = Path("data/prepare_stats.json")
LENGTHS_PLOT = Path("data/plots/lengths.csv")
TUNE_DIR = Path("tune")
BEST_PARAMS = TUNE_DIR / "best_params.json"
TUNE_SUMMARY = TUNE_DIR / "study.json"
TUNE_BEST = TUNE_DIR / "best.json"   # the best trial's value, nothing else (in MLflow too)
TRIALS_CSV = TUNE_DIR / "trials.csv"
TUNE_PLOTS_DIR = TUNE_DIR / "plots"
OPTUNA_DB = TUNE_DIR / "optuna.db"
MODELS_DIR = Path("models")
METRICS = Path("metrics.json")
SCORES = Path("scores.json")   # DVC metrics: the values that compare models (dvc exp show)
EVALUATE_PLOTS_DIR = Path("plots/evaluate")
PER_CLASS_PNG = EVALUATE_PLOTS_DIR / "per_class.png"
MISTAKES_CSV = EVALUATE_PLOTS_DIR / "mistakes.csv"


def repo_root() -> Path:
    """The user's repo: $DVC_ROOT when DVC runs the stage, else the cwd.

    They differ under `dvc exp run --temp` and `dvc queue start`: the stages run in a copy under
    .dvc/tmp/exps/ that DVC deletes afterwards, and DVC_ROOT names the repo the copy came from.
    The MLflow store and the caches belong there, or each experiment would lose its runs and
    download and analyse everything again.
    """
    return Path(os.environ.get("DVC_ROOT") or ".")


def cache_dir() -> Path:
    """Caches stay inside the repo (git-ignored) unless PIPELINE_CACHE_DIR says otherwise."""
    return Path(os.environ.get("PIPELINE_CACHE_DIR") or repo_root() / ".cache")
