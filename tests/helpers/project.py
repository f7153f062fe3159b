"""A tiny git + DVC copy of the repo on a small Korean table dataset, for `dvc repro` and `dvc exp run`.

The `repro_project` fixture (conftest.py) builds one and runs `dvc repro` in it once per test
session; tests that change a project work on a `clone()` of it.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from helpers import REPO

TOPICS = {
    "행정": ["주민등록 등본 발급 방법", "여권 재발급 신청 절차", "전입 신고 서류 안내"],
    "경제": ["소상공인 대출 지원 자격", "창업 자금 융자 신청", "세금 납부 기한 연장"],
    "복지": ["기초 연금 신청 대상", "장애인 활동 지원 서비스", "아동 수당 지급 기준"],
}
# The variables of the developer's shell that would send a test's stages elsewhere.
FOREIGN_ENV = ("PIPELINE_DATA_MIRROR", "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID",
               "OPTUNA_STORAGE", "DVC_ROOT", "DVC_EXP_NAME", "DVC_EXP_BASELINE_REV")
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]


def write_dataset(path: Path) -> None:
    """60 questions, 20 per topic, in the 제목,내용,분류 layout of the Seoul 120 table."""
    rows = ["제목,내용,분류"]
    for label, phrases in TOPICS.items():
        for i in range(20):
            rows.append(f"{phrases[i % 3]} 문의 {i},{phrases[(i + 1) % 3]} 관련 질문입니다 {i},{label}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def tiny_params() -> dict:
    """params.yaml with the table dataset and a tiny model, trained in seconds.

    Keys are updated, not replaced: DVC wants every key dvc.yaml lists to be in params.yaml.
    """
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["dataset"].update(name="table", classes=[])
    params["dataset"]["table"].update(source="questions.csv", text_columns=["제목", "내용"], label_column="분류")
    params["tokenize"]["workers"] = 1
    params["prepare"].update({"maxlen": 12, "val_size": 0.2, "test_size": 0.2})
    params["prepare"]["vocab"]["min_freq"] = 1
    params["train"]["model"].update(cell="gru", units=8, embedding_dim=8, dense_units=0, bidirectional=False,
                                    layers=1, dropout=0.0)
    # One model, not params.yaml's ensemble of 3: the tests that kill and resume training follow one
    # learning curve (tests/test_train.py trains ensembles); the pooling stays params.yaml's.
    params["train"].update(epochs=2, batch_size=8, ensemble=1)
    # The blend serves, so every test of the project serves both parts. Chosen on the validation
    # split: the out-of-fold choice (k more RNN fits in every train stage run) is tested in
    # tests/test_champion.py, and under MultiWorkerMirroredStrategy in tests/test_cluster.py.
    params["champion"].update(serve="blend", folds=1)
    params["tune"].update(n_trials=2, epochs=1, startup_trials=1,
                          space={"model.units": {"type": "int", "low": 4, "high": 8},
                                 "maxlen": {"type": "int", "low": 8, "high": 12, "step": 4}})
    return params


def stage_env(root: Path, site_cache: Path) -> dict:
    """The environment of the project's commands: the venv's tools first, caches inside the project."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": str(site_cache),
           "PIPELINE_CACHE_DIR": str(root / ".cache"), "MLFLOW_DISABLE_TELEMETRY": "true"}
    for key in FOREIGN_ENV:
        env.pop(key, None)
    return env


@dataclass(frozen=True)
class Project:
    root: Path
    env: dict

    @property
    def tracking_uri(self) -> str:
        """The project's own MLflow store, where its stages log (mlruns/ under the root)."""
        return f"sqlite:///{self.root / 'mlruns' / 'mlflow.db'}"

    def run(self, *cmd: str, timeout: int = 600) -> subprocess.CompletedProcess:
        return subprocess.run(list(cmd), cwd=self.root, env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def dvc(self, *args: str) -> subprocess.CompletedProcess:
        return self.run(sys.executable, "-m", "dvc", *args)

    def commit(self, message: str) -> None:
        for cmd in (["add", "-A"], ["commit", "-qm", message]):
            subprocess.run(GIT + cmd, cwd=self.root, env=self.env, check=True, capture_output=True)

    def set_param(self, section: str, key: str, value) -> None:
        path = self.root / "params.yaml"
        params = yaml.safe_load(path.read_text(encoding="utf-8"))
        params[section][key] = value
        path.write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")

    def client(self):
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri)

    def runs(self) -> list:
        """Every run of the project's experiment (textclf-table)."""
        client = self.client()
        experiment = client.get_experiment_by_name("textclf-table")
        return client.search_runs([experiment.experiment_id]) if experiment else []

    def read_json(self, rel: str):
        return json.loads((self.root / rel).read_text(encoding="utf-8"))

    def clone(self, dest: Path) -> Project:
        """A copy to change: git history, DVC cache and lock, outputs and caches, but an empty MLflow store.

        The store stays behind because its runs point at artifacts under the original root by
        absolute path; a copy of it would log the clone's new artifacts into the original.
        """
        shutil.copytree(self.root, dest, symlinks=True, ignore=shutil.ignore_patterns("mlruns"))
        return Project(dest, stage_env(dest, dest.parent / f"{dest.name}-dvc-site"))


def make_project(root: Path) -> Project:
    """A git repo with the working tree's pipeline/ (the code under test), dvc.yaml and tiny params."""
    shutil.copytree(REPO / "pipeline", root / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    for rel in ("dvc.yaml", ".dvcignore", ".gitignore", ".dvc/config", ".dvc/.gitignore"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, root / rel)
    write_dataset(root / "questions.csv")
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params(), allow_unicode=True), encoding="utf-8")
    project = Project(root, stage_env(root, root.parent / f"{root.name}-dvc-site"))
    subprocess.run(["git", "init", "-q"], cwd=root, env=project.env, check=True)
    project.commit("init")
    return project
