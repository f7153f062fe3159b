"""`dvc repro` for real, in a temporary git + DVC copy of the repo, on a small table dataset."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO

TOPICS = {
    "행정": ["주민등록 등본 발급 방법", "여권 재발급 신청 절차", "전입 신고 서류 안내"],
    "경제": ["소상공인 대출 지원 자격", "창업 자금 융자 신청", "세금 납부 기한 연장"],
    "복지": ["기초 연금 신청 대상", "장애인 활동 지원 서비스", "아동 수당 지급 기준"],
}


def write_dataset(path: Path) -> None:
    rows = ["제목,내용,분류"]
    for label, phrases in TOPICS.items():
        for i in range(20):
            rows.append(f"{phrases[i % 3]} 문의 {i},{phrases[(i + 1) % 3]} 관련 질문입니다 {i},{label}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def run(cmd: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture
def project(tmp_path) -> tuple[Path, dict]:
    root = tmp_path / "project"
    # The working tree as it is (not the last commit): the code under test.
    shutil.copytree(REPO / "pipeline", root / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    for rel in ("dvc.yaml", ".dvcignore", ".gitignore", ".dvc/config", ".dvc/.gitignore"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, root / rel)
    write_dataset(root / "questions.csv")
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    # Keys are updated, not replaced: DVC wants every key dvc.yaml lists to be in params.yaml.
    params["dataset"].update(name="table", classes=[])
    params["dataset"]["table"].update(source="questions.csv", text_columns=["제목", "내용"],
                                      label_column="분류")
    params["tokenize"]["workers"] = 1
    params["prepare"].update({"maxlen": 12, "val_size": 0.2, "test_size": 0.2})
    params["prepare"]["vocab"]["min_freq"] = 1
    params["train"]["model"].update(units=8, embedding_dim=8, dense_units=0, bidirectional=False)
    params["train"].update(epochs=2, batch_size=8)
    params["tune"].update(n_trials=2, epochs=1, startup_trials=1,
                          space={"model.units": {"type": "int", "low": 4, "high": 8},
                                 "maxlen": {"type": "int", "low": 8, "high": 12, "step": 4}})
    (root / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": str(tmp_path / "dvc-site"),
           "PIPELINE_CACHE_DIR": str(root / ".cache")}
    env.pop("PIPELINE_DATA_MIRROR", None)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"]):
        subprocess.run(cmd, cwd=root, env=env, check=True)
    return root, env


def dvc(root: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "dvc", *args], root, env)


def set_param(root: Path, section: str, key: str, value) -> None:
    path = root / "params.yaml"
    params = yaml.safe_load(path.read_text(encoding="utf-8"))
    params[section][key] = value
    path.write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")


def test_dvc_repro_end_to_end(project):
    root, env = project
    first = dvc(root, env, "repro")
    assert first.returncode == 0, first.stdout + first.stderr
    prepared = root / "data" / "prepared"
    train = np.load(prepared / "train.npz")
    assert train["x"].shape[1] == 12 and train["x"].dtype == np.int32
    sizes = {s: len(np.load(prepared / f"{s}.npz")["y"]) for s in ("train", "val", "test")}
    assert sizes == {"train": 36, "val": 12, "test": 12}
    assert (root / "dvc.lock").is_file()
    assert (root / "data" / "raw" / "manifest.json").is_file()
    for name in ("model.keras", "vocab.json", "labels.json", "params.json", "preprocess.json", "history.json",
                 "learning_curve.png", "run.json"):
        assert (root / "models" / name).is_file(), name
    metrics = json.loads((root / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["test/rows"] == 12 and 0 <= metrics["test/accuracy"] <= 1
    assert set(metrics["test/per_class"]) == {"행정", "경제", "복지"}
    assert (root / "plots" / "evaluate" / "confusion.csv").read_text(encoding="utf-8").count("\n") == 13
    runs = mlflow_runs(root)
    assert {r.info.run_name: r.info.status for r in runs} == {
        stage: "FINISHED" for stage in ("download", "tokenize", "prepare", "tune", "trial 0", "trial 1",
                                        "train", "evaluate")}
    # The study's first trial is params.yaml's own values; train used the best trial's, and says so.
    first = next(r for r in runs if r.info.run_name == "trial 0")
    assert (first.data.params["train.model.units"], first.data.params["train.maxlen"]) == ("8", "12")
    best = json.loads((root / "tune" / "best_params.json").read_text())
    train_run = next(r for r in runs if r.info.run_name == "train")
    assert train_run.data.params["train.model.units"] == str(best["params"]["model.units"])
    assert train_run.data.params["train.maxlen"] == str(best["params"]["maxlen"])
    assert train_run.data.tags["tune.study"] == best["study"]
    assert json.loads((root / "models" / "params.json").read_text())["train"]["maxlen"] == best["params"]["maxlen"]
    assert "val/accuracy" in train_run.data.metrics and "test/accuracy" in train_run.data.metrics
    run_info = json.loads((root / "models" / "run.json").read_text())
    assert run_info["run_id"] == train_run.info.run_id and run_info["tuned_from"]["trial"] == best["trial"]
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlruns' / 'mlflow.db'}")
    (version,) = client.search_model_versions("name='textclf-table'")
    assert version.run_id == train_run.info.run_id
    # In a subprocess: mlflow.set_tracking_uri would leak into the other tests of this process.
    code = ("import json, mlflow; from mlflow.models import get_model_info; "
            f"mlflow.set_tracking_uri({client.tracking_uri!r}); "
            f"s = get_model_info('models:/textclf-table/{version.version}').signature; "
            "print(json.dumps([s.inputs.to_dict(), s.outputs.to_dict()]))")
    out = run([sys.executable, "-c", code], root, env)
    inputs, outputs = json.loads(out.stdout.strip().splitlines()[-1])
    assert inputs == [{"type": "string", "required": True}] and len(outputs) == 5   # label, 3 classes, flag

    # Nothing changed: download runs (always_changed) and finds the same bytes; the rest is skipped.
    second = dvc(root, env, "repro")
    assert second.returncode == 0, second.stderr
    assert "Stage 'tokenize' didn't change, skipping" in second.stdout
    assert "Stage 'prepare' didn't change, skipping" in second.stdout
    assert "Stage 'tune' didn't change, skipping" in second.stdout

    # Only a POS filter changed: tokenize re-runs from the analysis cache.
    set_param(root, "tokenize", "pos_drop", ["Josa", "Punctuation", "Number"])
    third = dvc(root, env, "repro")
    assert third.returncode == 0, third.stderr
    stats = yaml.safe_load((root / "data" / "tokenize_stats.json").read_text(encoding="utf-8"))
    assert stats["analysed"] == 0 and stats["cache_hits"] > 0
    assert stats["params"]["tokenize"]["pos_drop"] == ["Josa", "Punctuation", "Number"]

    # A bad parameter: the stage fails naming it, and every previous output is intact.
    before = {p: p.read_bytes() for p in (root / "data").rglob("*") if p.is_file()}
    set_param(root, "tokenize", "pos_drop", ["Josa"])
    (root / "questions.csv").write_text("title,body,label\na,b,c\n", encoding="utf-8")
    failed = dvc(root, env, "repro")
    assert failed.returncode != 0
    assert "no column '제목'; the columns present are: title, body, label" in failed.stderr
    after = {p: p.read_bytes() for p in (root / "data").rglob("*") if p.is_file()
             if not p.is_relative_to(root / "data" / "raw")}
    assert {p: b for p, b in before.items() if p in after} == after
    assert set(after) == {p for p in before if not p.is_relative_to(root / "data" / "raw")}
    failed_runs = [r for r in mlflow_runs(root) if r.info.status == "FAILED"]
    assert [r.info.run_name for r in failed_runs] == ["tokenize"]


def mlflow_runs(root: Path) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("textclf-table")
    return client.search_runs([experiment.experiment_id])
