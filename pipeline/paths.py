"""Where stages read and write, relative to the repo root (the folder dvc.yaml is in)."""
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


def cache_dir() -> Path:
    """Caches stay inside the repo (git-ignored) unless PIPELINE_CACHE_DIR says otherwise."""
    return Path(os.environ.get("PIPELINE_CACHE_DIR", ".cache"))
