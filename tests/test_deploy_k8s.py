"""deploy/k8s and deploy/docker, checked offline: no cluster, no Docker daemon, no network.

Every overlay is rendered by a real kustomize (`kustomize build`, else `kubectl kustomize`; the
tests needing it skip, saying why, where neither exists) from a copy of deploy/k8s whose secret env
files make-secrets.sh wrote. Each rendered resource is validated against the Kubernetes 1.37
schemas shipped with kubernetes-validate (strict: unknown fields fail); the TFJob, a CRD with no
schema there, is skipped by name but its pod templates are validated as PodTemplates and its
structure checked here. Then the rules of docs/distributed.md: no password in any manifest,
requests and limits on every container, only the image built from deploy/docker (and PostgreSQL's),
GPUs only with a node selector, every reference resolvable. The Dockerfile is parsed (a small
reader, tests/helpers/deploy.py) and checked against the repo; it is never built here.
"""
from __future__ import annotations

import base64
import copy
import importlib.util
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from helpers import REPO
from helpers.deploy import (
    DOCKERFILE,
    DOCKERIGNORE,
    K8S,
    dockerfile_instructions,
    dockerfile_stages,
    dockerignore_rules,
    ignored,
    key,
    kustomize_command,
    pods,
    quantity,
    render,
    secret_values,
    substitute,
)

KUBERNETES_VERSION = "1.37"
CRDS = {("kubeflow.org/v1", "TFJob")}     # no schema in kubernetes-validate: checked by hand below
IMAGE = "textclf"                          # what deploy/docker/Dockerfile builds (tags: its variants)
THIRD_PARTY_IMAGES = {"postgres"}          # the only other image: PostgreSQL's official one
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").is_file())
SECRET_ENV = "secrets.env"
SECRETISH = re.compile(r"PASS(WORD|WD)?$|PASSWORD|PWD$|SECRET|TOKEN|CREDENTIAL|_KEY$|ACCESS_KEY", re.I)


# --- rendering --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict:
    """{overlay: resources} from a copy of deploy/k8s with fresh random secrets, and the secrets."""
    command = kustomize_command()
    if command is None:
        pytest.skip("no kustomize: neither `kustomize` nor `kubectl` is on PATH")
    root = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(K8S, root, ignore=shutil.ignore_patterns("*.env"))   # never the developer's own secrets
    done = subprocess.run(["sh", str(root / "make-secrets.sh")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = {name: render(command, root / "overlays" / name) for name in OVERLAYS}
    out["_secrets"] = dict(line.split("=", 1) for line in (root / "base" / SECRET_ENV).read_text().splitlines())
    out["_root"] = root
    return out


def overlay_docs(rendered, name) -> list[dict]:
    return rendered[name]


def test_the_overlays_are_there():
    assert {"cpu", "gpu", "cpu-external-db"} <= set(OVERLAYS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_resource_is_valid_against_the_kubernetes_schemas(rendered, overlay):
    import kubernetes_validate

    docs = overlay_docs(rendered, overlay)
    seen = set()
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) in CRDS:
            continue
        # strict: a misspelt or misplaced field fails; a kind without a schema raises (not skipped)
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        seen.add(doc["kind"])
    for pod in pods(docs):        # the TFJob's pod templates too, as the PodTemplates they are
        kubernetes_validate.validate({"apiVersion": "v1", "kind": "PodTemplate",
                                      "metadata": {"name": "t"}, "template": pod.template},
                                     KUBERNETES_VERSION, strict=True)
    assert {"Deployment", "Service", "Job", "Secret", "ConfigMap", "PersistentVolumeClaim"} <= seen


def test_the_schema_check_catches_a_bad_field(rendered):
    """The validation above is not vacuous: a misspelt field and a wrong type both fail."""
    import kubernetes_validate

    job = next(d for d in rendered["cpu"] if key(d) == ("Job", "tune-workers"))
    for change in (lambda j: j["spec"].update(paralelism=2),
                   lambda j: j["spec"]["template"]["spec"]["containers"][0].update(command="python")):
        bad = copy.deepcopy(job)
        change(bad)
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(bad, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_tfjob_has_the_structure_the_training_operator_needs(rendered, overlay):
    (tfjob,) = [d for d in overlay_docs(rendered, overlay) if d["kind"] == "TFJob"]
    assert tfjob["apiVersion"] == "kubeflow.org/v1" and tfjob["metadata"]["name"] == "train"
    assert tfjob["metadata"]["namespace"] == "textclf"
    specs = tfjob["spec"]["tfReplicaSpecs"]
    assert set(specs) == {"Chief", "Worker"}
    assert specs["Chief"]["replicas"] == 1 and specs["Worker"]["replicas"] >= 1
    for replica, spec in specs.items():
        assert spec["restartPolicy"] in ("Always", "OnFailure", "Never", "ExitCode"), replica
        pod = spec["template"]["spec"]
        # the operator injects TF_CONFIG into, and opens its port on, the container named tensorflow
        (main,) = [c for c in pod["containers"] if c["name"] == "tensorflow"]
        assert {"name": "tfjob-port", "containerPort": 2222} in main["ports"]
        assert main["image"].startswith(f"{IMAGE}:")
        script = " ".join(main["command"] + main.get("args", []))
        assert "textclf-params -S train.distribute=multi_worker" in script
        assert "python -m pipeline.stages.train --params params.cluster.yaml" in script
        assert "TF_CONFIG" not in {e["name"] for e in main.get("env", [])}   # the operator's to set
        pulled = pod["initContainers"][0]["command"]
        assert "data/prepared" in pulled and "tune/best_params.json" in pulled
    assert tfjob["spec"]["runPolicy"]["backoffLimit"] >= 1


def test_the_train_and_tune_commands_exist_with_those_flags():
    for module, flag in (("pipeline.stages.tune", "--worker"), ("pipeline.stages.train", "--params")):
        done = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True,
                              cwd=REPO, timeout=120)
        assert done.returncode == 0 and flag in done.stdout, (module, done.stderr)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_optuna_workers_share_the_postgresql_storage(rendered, overlay):
    docs = overlay_docs(rendered, overlay)
    job = next(d for d in docs if key(d) == ("Job", "tune-workers"))
    assert job["spec"]["parallelism"] >= 2 and "completions" not in job["spec"]   # a work queue
    (pod,) = [p for p in pods(docs) if p.where == "Job/tune-workers"]
    (tune,) = pod.spec["containers"]
    assert tune["command"] == ["python", "-m", "pipeline.stages.tune", "--worker"]
    assert tune["workingDir"] == "/workspace"
    env = {e["name"]: e for e in tune["env"]}
    assert env["OPTUNA_STORAGE"]["value"].startswith("postgresql://optuna:$(OPTUNA_DB_PASSWORD)@")
    assert env["OPTUNA_DB_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "OPTUNA_DB_PASSWORD"
    rule = job["spec"]["podFailurePolicy"]["rules"][0]
    assert rule["action"] == "FailJob" and rule["onExitCodes"]["containerName"] == "tune"
    assert rule["onExitCodes"]["values"] == [2]          # core/cli.py: exit 2 is bad input, not worth a retry
    assert pod.spec["restartPolicy"] == "Never"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_mlflow_server_runs_as_make_cluster_up_does(rendered, overlay):
    docs = overlay_docs(rendered, overlay)
    (pod,) = [p for p in pods(docs) if p.where == "Deployment/mlflow"]
    (server,) = pod.spec["containers"]
    env = {e["name"]: e for e in server["env"]}
    assert env["MLFLOW_BACKEND_STORE_URI"]["value"].startswith("postgresql://mlflow:$(MLFLOW_DB_PASSWORD)@")
    assert env["MLFLOW_AUTH_DATABASE_URI"]["value"].startswith("postgresql://mlflow:$(MLFLOW_DB_PASSWORD)@")
    for name in ("MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"):
        assert env[name]["valueFrom"]["secretKeyRef"]["name"].startswith("textclf-secrets"), name
    script = (K8S / "base" / "scripts" / "mlflow-server.sh").read_text()
    assert server["command"] == ["sh", "/scripts/mlflow-server.sh"]
    for flag in ("--serve-artifacts", "--app-name basic-auth", "--host 0.0.0.0", "--port 5000"):
        assert flag in script, flag
    assert "--backend-store-uri" not in script     # from the environment: no password on the command line
    artifacts = {m["mountPath"]: m["name"] for m in server["volumeMounts"]}
    assert artifacts[env["MLFLOW_ARTIFACTS_DESTINATION"]["value"]] == "artifacts"
    claims = {v["name"]: v.get("persistentVolumeClaim", {}).get("claimName") for v in pod.spec["volumes"]}
    assert claims["artifacts"] == "mlflow-artifacts"


def test_the_names_the_server_and_users_job_use_are_mlflows():
    """The flags and variables in the manifests are ones the installed MLflow reads (a misspelt
    variable would be ignored without a word): its `mlflow server --help`, and its source files
    for the variables (importing mlflow.server in this process would build its apps)."""
    done = subprocess.run([str(Path(sys.executable).parent / "mlflow"), "server", "--help"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for flag in ("--serve-artifacts", "--app-name [basic-auth]", "--host", "--port", "--workers"):
        assert flag in done.stdout, flag
    package = Path(importlib.util.find_spec("mlflow").submodule_search_locations[0])
    cli = (package / "cli" / "__init__.py").read_text()
    for name in ("MLFLOW_BACKEND_STORE_URI", "MLFLOW_ARTIFACTS_DESTINATION"):
        assert f'envvar="{name}"' in cli, name
    variables = (package / "environment_variables.py").read_text()
    for name in ("MLFLOW_AUTH_CONFIG_PATH", "MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD",
                 "MLFLOW_FLASK_SERVER_SECRET_KEY", "MLFLOW_SERVER_ALLOWED_HOSTS",
                 "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"):
        assert re.search(rf'Variable\(\s*"{name}"', variables), name
    client = (package / "server" / "auth" / "client.py").read_text()
    assert "def create_user(" in client and "def update_user_password(" in client
    config = (package / "server" / "auth" / "config.py").read_text()
    ini = (K8S / "base" / "scripts" / "mlflow-server.sh").read_text()
    for field in ("default_permission", "database_uri", "authorization_function"):
        assert f'"{field}"' in config and f"\n{field} = " in ini, field


# --- secrets ----------------------------------------------------------------------------------

def test_secrets_come_from_git_ignored_env_files_with_committed_examples():
    tracked = subprocess.run(["git", "ls-files", "deploy"], capture_output=True, text=True, cwd=REPO).stdout.split()
    assert "deploy/k8s/base/secrets.env.example" in tracked and "deploy/k8s/base/dvc-remote.env.example" in tracked
    assert not [f for f in tracked if f.endswith(".env")], "a filled-in env file is committed"
    for name in ("secrets.env", "dvc-remote.env"):
        check = subprocess.run(["git", "check-ignore", "-q", f"deploy/k8s/base/{name}"], cwd=REPO)
        assert check.returncode == 0, f"deploy/k8s/base/{name} is not git-ignored"
    example = (K8S / "base" / "secrets.env.example").read_text()
    values = dict(line.split("=", 1) for line in example.splitlines() if re.match(r"[A-Z_]+=", line))
    assert values and all(v == "" for k, v in values.items() if SECRETISH.search(k)), "the example holds a secret"


def test_make_secrets_writes_random_values_once(rendered):
    root = rendered["_root"]
    env = root / "base" / SECRET_ENV
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert stat.S_IMODE((root / "base" / "dvc-remote.env").stat().st_mode) == 0o600
    example = [line.split("=", 1) for line in (K8S / "base" / "secrets.env.example").read_text().splitlines()
               if re.match(r"[A-Z_]+=", line)]
    secrets = rendered["_secrets"]
    assert list(secrets) == [k for k, _ in example]
    for name, default in example:
        if default:
            assert secrets[name] == default
        else:
            assert re.fullmatch(r"[0-9a-f]{48}", secrets[name]), name    # URL-safe: it goes into URLs
    assert len({secrets[k] for k, v in example if not v}) == len([k for k, v in example if not v])
    before = env.read_text()
    subprocess.run(["sh", str(root / "make-secrets.sh")], check=True, capture_output=True)
    assert env.read_text() == before                       # kept
    subprocess.run(["sh", str(root / "make-secrets.sh"), "--force"], check=True, capture_output=True)
    assert env.read_text() != before                       # new passwords on --force
    env.write_text(before)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_password_in_any_manifest(rendered, overlay):
    docs = overlay_docs(rendered, overlay)
    generated = [v for k, v in rendered["_secrets"].items() if SECRETISH.search(k)]
    (secret,) = [d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"].startswith("textclf-secrets")]
    assert secret_values(secret) == rendered["_secrets"]   # the Secret is the one place they are
    for doc in docs:
        if doc["kind"] == "Secret":
            continue
        text = yaml.safe_dump(doc)
        for value in generated:
            assert value not in text and base64.b64encode(value.encode()).decode() not in text, key(doc)
        if doc["kind"] == "ConfigMap":
            assert not [k for k in doc.get("data", {}) if SECRETISH.search(k)], key(doc)
    for pod in pods(docs):
        for c in pod.containers():
            for e in c.get("env", []):
                if SECRETISH.search(e["name"]):
                    assert "secretKeyRef" in e.get("valueFrom", {}), (pod.where, e["name"])
                for _user, password in re.findall(r"://([^:/@\s]+):([^@/\s]+)@", e.get("value", "")):
                    assert re.fullmatch(r"\$\(\w+\)", password), (pod.where, e["name"])
            words = " ".join(c.get("command", []) + c.get("args", []))
            assert not re.search(r"(?i)password[= ]+(?!\$)\S", words), pod.where


# --- resources, images, GPUs ------------------------------------------------------------------

@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_requests_and_limits(rendered, overlay):
    for pod in pods(overlay_docs(rendered, overlay)):
        for c in pod.containers():
            resources = c.get("resources", {})
            for kind in ("cpu", "memory"):
                request, limit = resources.get("requests", {}).get(kind), resources.get("limits", {}).get(kind)
                assert request and limit, (pod.where, c["name"], kind)
                assert quantity(request) <= quantity(limit), (pod.where, c["name"], kind)


def dockerfile_variants() -> set[str]:
    _, stages = dockerfile_stages(dockerfile_instructions(DOCKERFILE.read_text()))
    return {s.name.removeprefix("deps-") for s in stages if s.name.startswith("deps-")}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_images_are_the_one_built_from_deploy_docker(rendered, overlay):
    variants = dockerfile_variants()
    assert variants == {"cpu", "gpu"}
    for pod in pods(overlay_docs(rendered, overlay)):
        for c in pod.containers():
            name, _, tag = c["image"].rpartition(":")
            assert name and tag and tag != "latest", (pod.where, c["image"])
            if name == IMAGE:
                wanted = "gpu" if pod.gpus() else "cpu"    # one image per pod; the CUDA build only where a GPU is
                assert tag == wanted, (pod.where, c["name"], c["image"])
            else:
                assert name in THIRD_PARTY_IMAGES, (pod.where, c["image"])
            if name == IMAGE:
                assert pod.spec["securityContext"]["runAsUser"] == 10001    # the Dockerfile's USER


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gpus_only_with_a_node_selector(rendered, overlay):
    gpu_pods = [p for p in pods(overlay_docs(rendered, overlay)) if p.gpus()]
    if overlay.startswith("gpu"):
        assert sorted(p.where for p in gpu_pods) == ["Job/tune-workers", "TFJob/train/Chief", "TFJob/train/Worker"]
    else:
        assert not gpu_pods
    for pod in gpu_pods:
        assert pod.spec.get("nodeSelector"), pod.where
        assert any(t.get("key") == "nvidia.com/gpu" for t in pod.spec.get("tolerations", [])), pod.where
        for c in pod.spec["containers"]:
            if c["resources"].get("limits", {}).get("nvidia.com/gpu"):
                assert int(c["resources"]["limits"]["nvidia.com/gpu"]) == 1


# --- references -------------------------------------------------------------------------------

def expand(text: str, defined: dict[str, str]) -> str:
    """$(NAME) as the kubelet expands it in env values, command and args."""
    return re.sub(r"\$\((\w+)\)", lambda m: defined[m[1]], text)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_reference_resolves(rendered, overlay):
    """ConfigMaps, Secrets, keys, PVCs, Services and $(VAR)s named in a pod exist (kustomize's hashed
    names included, which reach the TFJob only through base/kustomizeconfig.yaml)."""
    docs = overlay_docs(rendered, overlay)
    objects = {key(d): d for d in docs}
    data = {("ConfigMap", n): d.get("data", {}) for (k, n), d in objects.items() if k == "ConfigMap"}
    data |= {("Secret", n): secret_values(d) for (k, n), d in objects.items() if k == "Secret"}
    services = {n: d for (k, n), d in objects.items() if k == "Service"}
    assert all(d["metadata"].get("namespace") == "textclf" for d in docs if d["kind"] != "Namespace")
    for pod in pods(docs):
        claims = {t["metadata"]["name"] for t in pod.owner["spec"].get("volumeClaimTemplates", [])}
        for v in pod.spec.get("volumes", []):
            if "configMap" in v:
                assert ("ConfigMap", v["configMap"]["name"]) in data, (pod.where, v)
            if "secret" in v:
                assert ("Secret", v["secret"]["secretName"]) in data, (pod.where, v)
            if "persistentVolumeClaim" in v:
                assert ("PersistentVolumeClaim", v["persistentVolumeClaim"]["claimName"]) in objects, (pod.where, v)
        volumes = {v["name"] for v in pod.spec.get("volumes", [])} | claims
        for c in pod.containers():
            assert {m["name"] for m in c.get("volumeMounts", [])} <= volumes, (pod.where, c["name"])
            defined: dict[str, str] = {}
            for source in c.get("envFrom", []):
                kind = "ConfigMap" if "configMapRef" in source else "Secret"
                ref = source["configMapRef"] if kind == "ConfigMap" else source["secretRef"]
                assert (kind, ref["name"]) in data, (pod.where, ref)
                defined |= data[(kind, ref["name"])]
            for e in c.get("env", []):
                for var in re.findall(r"\$\((\w+)\)", e.get("value", "")):
                    assert var in defined, f"{pod.where}/{c['name']}: {e['name']} uses $({var}) before it is defined"
                for ref_name, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
                    ref = e.get("valueFrom", {}).get(ref_name)
                    if ref:
                        assert ref["key"] in data.get((kind, ref["name"]), {}), (pod.where, e["name"])
                defined[e["name"]] = e.get("value", "<from a reference>")
            words = c.get("command", []) + c.get("args", [])
            for var in re.findall(r"\$\((\w+)\)", " ".join(words)):
                assert var in defined, f"{pod.where}/{c['name']}: the command uses $({var}), never defined"
            expanded = expand(" ".join(words), defined)
            for host, port in re.findall(r"--wait\s+([\w.-]+):(\d+)", expanded):
                if "." not in host:     # an in-cluster name: its Service exists, with that port
                    assert host in services, (pod.where, host)
                    assert int(port) in [p["port"] for p in services[host]["spec"]["ports"]], (pod.where, host)
            for url in re.findall(r"http://([\w.-]+):(\d+)", " ".join(str(v) for v in defined.values())):
                assert url[0] in services and int(url[1]) in [p["port"] for p in services[url[0]]["spec"]["ports"]]
    for name, service in services.items():        # each Service selects a pod that has its target port
        targets = [p for p in pods(docs)
                   if service["spec"]["selector"].items() <= p.template["metadata"].get("labels", {}).items()]
        assert targets, name
        ports = {port["name"] for c in targets[0].spec["containers"] for port in c.get("ports", [])}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports, name


def test_external_postgres_drops_the_in_cluster_server(rendered):
    docs = rendered["cpu-external-db"]
    assert not [d for d in docs if d["metadata"]["name"].startswith("postgres")]
    (env,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("textclf-env")]
    assert env["data"]["POSTGRES_HOST"] != "postgres" and env["data"]["POSTGRES_SSLMODE"] == "require"
    cpu = {key(d) for d in rendered["cpu"]}
    assert ("StatefulSet", "postgres") in cpu and ("Service", "postgres") in cpu


# --- scripts ----------------------------------------------------------------------------------

def test_the_shell_scripts_parse():
    scripts = sorted((REPO / "deploy").rglob("*.sh"))
    assert len(scripts) >= 3
    for script in scripts:
        done = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
        assert done.returncode == 0, (script, done.stderr)


def test_the_python_scripts_compile():
    for script in sorted((REPO / "deploy").rglob("*.py")):
        compile(script.read_text(), str(script), "exec")


def load_script(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_textclf_params_changes_only_the_named_key(tmp_path, capsys):
    from pipeline.core.config import load_params

    set_params = load_script(REPO / "deploy" / "docker" / "set_params.py")
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    assert set_params.main(["-S", "train.distribute=multi_worker", "--params", str(tmp_path / "params.yaml")]) == 0
    original, changed = load_params(tmp_path / "params.yaml"), load_params(tmp_path / "params.cluster.yaml")
    assert changed.train.distribute == "multi_worker"
    train = original.train.model_copy(update={"distribute": "multi_worker"})
    assert changed == original.model_copy(update={"train": train})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.cluster.yaml", "params.yaml"]   # no temp file
    for bad, message in (("train.distribute=bogus", "train.distribute: got 'bogus', allowed"),
                         ("train.nokey=1", "with -S train.nokey=1: train.nokey: unknown key (not in params.yaml)"),
                         ("train", "expected KEY=VALUE")):
        with pytest.raises(SystemExit) as exc:
            set_params.main(["-S", bad, "--params", str(tmp_path / "params.yaml")])
        assert message in str(exc.value) and "\n" not in str(exc.value)


def test_textclf_params_writes_what_dvc_reads_back(tmp_path, capsys):
    """Several -S, in DVC's grammar; the file is written as DVC writes params.yaml, so text that YAML 1.2
    reads as a number ("1e-3") stays text, and Hangul stays as it is."""
    from pipeline.core.config import read_yaml

    set_params = load_script(REPO / "deploy" / "docker" / "set_params.py")
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    out = tmp_path / "pod.yaml"
    assert set_params.main(["-S", "train.learning_rate=1e-3", "-S", 'dataset.classes=["행정","1e-3"]',
                            "-S", "params.yaml:train.epochs=3", "--params", str(tmp_path / "params.yaml"),
                            "--out", str(out)]) == 0
    got = read_yaml(out)
    assert got["train"]["learning_rate"] == 1e-3 and got["train"]["epochs"] == 3
    assert got["dataset"]["classes"] == ["행정", "1e-3"]
    assert "행정" in out.read_text(encoding="utf-8")
    with pytest.raises(SystemExit):   # -S is required
        set_params.main(["--params", str(tmp_path / "params.yaml")])


def test_textclf_workspace_waits_for_a_port():
    workspace = load_script(REPO / "deploy" / "docker" / "workspace.py")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        workspace.wait_for([f"127.0.0.1:{port}"], timeout=5)
    with pytest.raises(SystemExit, match="not reachable"):
        workspace.wait_for([f"127.0.0.1:{port}"], timeout=0)
    with pytest.raises(SystemExit, match="host:port"):
        workspace.wait_for(["postgres"], timeout=0)


@pytest.mark.integration
def test_textclf_workspace_pulls_from_a_folder_remote(tmp_path):
    """The pods' init step for real: a DVC project without git (as in the image) gets its output
    back from a folder remote (as the dvc-remote volume)."""
    dvc = [sys.executable, "-m", "dvc"]
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": str(tmp_path / "site")}
    project, remote, app = tmp_path / "project", tmp_path / "remote", tmp_path / "app"
    project.mkdir()
    (project / "data" / "prepared").mkdir(parents=True)
    (project / "data" / "prepared" / "x.txt").write_text("prepared\n")
    (project / "dvc.yaml").write_text("stages:\n  prepare:\n    cmd: 'true'\n    outs:\n      - data/prepared\n")
    for cmd in (["init", "--no-scm", "-q"], ["commit", "-f", "-q"], ["push", "-q", "-r", "r"]):
        if cmd[0] == "push":
            subprocess.run([*dvc, "remote", "add", "r", str(remote)], cwd=project, env=env, check=True)
        subprocess.run([*dvc, *cmd], cwd=project, env=env, check=True, capture_output=True)
    assert (project / "dvc.lock").is_file()
    # the image: the project without data or cache (.dockerignore), with core.no_scm (Dockerfile)
    shutil.copytree(project, app, ignore=shutil.ignore_patterns("data", "cache", "tmp"))
    done = subprocess.run([sys.executable, str(REPO / "deploy" / "docker" / "workspace.py"), str(tmp_path / "ws"),
                           "--source", str(app), "--pull", "data/prepared"],
                          env={**env, "DVC_REMOTE_URL": str(remote),
                               "PATH": f"{Path(sys.executable).parent}:{env['PATH']}"},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "ws" / "data" / "prepared" / "x.txt").read_text() == "prepared\n"
    assert not (app / "data").exists()      # the image's copy stays as it was


# --- Dockerfile and .dockerignore -------------------------------------------------------------

def docker_chain(variant: str):
    global_args, stages = dockerfile_stages(dockerfile_instructions(DOCKERFILE.read_text()))
    by_name = {s.name: s for s in stages}
    values = {**global_args, "VARIANT": variant}
    chain, stage = [], stages[-1]
    while True:
        chain.insert(0, stage)
        base = substitute(stage.base, values)
        if base not in by_name:
            return base, chain
        stage = by_name[base]


def test_the_dockerfile_parses_into_the_stages_the_docs_build():
    instructions = dockerfile_instructions(DOCKERFILE.read_text())
    global_args, stages = dockerfile_stages(instructions)
    assert global_args["VARIANT"] == "cpu"                  # plain `docker build` makes the cpu image
    assert [s.name for s in stages] == ["base", "deps-cpu", "deps-gpu", "app"]
    assert len({s.name for s in stages}) == len(stages)
    docs = (REPO / "docs" / "distributed.md").read_text()
    for variant in ("cpu", "gpu"):
        assert f"-t {IMAGE}:{variant}" in DOCKERFILE.read_text()
        assert f"-t {IMAGE}:{variant}" in docs


def test_the_parser_refuses_what_it_does_not_read():
    with pytest.raises(ValueError, match="unknown instruction"):
        dockerfile_instructions("FROM python:3.11\nRUNN echo\n")
    with pytest.raises(ValueError, match="continued"):
        dockerfile_instructions("FROM python:3.11\nRUN echo \\\n")
    assert [i.args for i in dockerfile_instructions("FROM a:1\nRUN x \\\n  # note\n  && y\n")] == ["a:1", "x && y"]


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_each_variant_installs_its_extra_under_the_lock(variant):
    base_image, chain = docker_chain(variant)
    name, _, tag = base_image.rpartition(":")
    assert name == "python" and tag.startswith("3.11"), base_image     # the lock was made on 3.11
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert variant in extras
    runs = [i.args for s in chain for i in s.instructions if i.keyword == "RUN"]
    installs = [r for r in runs if "pip install --constraint requirements.lock" in r]
    assert len(installs) == 1 and f'".[{variant}]"' in installs[0]
    envs = " ".join(i.args for s in chain for i in s.instructions if i.keyword == "ENV")
    assert ("NVIDIA_VISIBLE_DEVICES=all" in envs) == (variant == "gpu")
    users = [i.args for s in chain for i in s.instructions if i.keyword == "USER"]
    assert users[-1] == "10001:10001"                       # not root; the manifests' runAsUser
    workdir = [i.args for s in chain for i in s.instructions if i.keyword == "WORKDIR"]
    assert workdir[-1] == "/app"                            # textclf-workspace's --source default


def test_what_the_dockerfile_copies_exists_and_is_in_the_build_context():
    rules = dockerignore_rules(DOCKERIGNORE.read_text())
    copied = []
    for ins in dockerfile_instructions(DOCKERFILE.read_text()):
        if ins.keyword in ("COPY", "ADD"):
            assert ins.keyword == "COPY", "ADD fetches URLs: COPY only"
            *sources, dest = [w for w in ins.args.split() if not w.startswith("--")]
            copied += [(s, dest) for s in sources]
    assert copied
    for source, _ in copied:
        if source == ".":
            continue
        assert (REPO / source).exists(), source
        assert not ignored(rules, source), f"{source} is left out of the build context by .dockerignore"
    installed = {Path(dest).name for source, dest in copied if dest.startswith("/usr/local/bin/")}
    assert installed == {"textclf-workspace", "textclf-params"}


def test_dockerignore_keeps_data_caches_and_secrets_out():
    rules = dockerignore_rules(DOCKERIGNORE.read_text())
    for path in (".venv/bin/python", ".cache/keras/x", "data/prepared/train.npz", "data/raw/x.csv",
                 "mlruns/mlflow.db", "models/model.keras", ".dvc/cache/files/md5/ab/cd", ".dvc/tmp/lock",
                 ".git/HEAD", "deploy/k8s/base/secrets.env", "deploy/k8s/base/dvc-remote.env",
                 "pipeline/__pycache__/x.pyc", "tune/optuna.db", "tune/optuna.journal", "x/.env"):
        assert ignored(rules, path), path
    for path in ("pyproject.toml", "requirements.lock", "README.md", "params.yaml", "dvc.yaml", "dvc.lock",
                 ".dvc/config", "deploy/docker/workspace.py", "deploy/k8s/base/secrets.env.example"):
        assert not ignored(rules, path), path
    code = subprocess.run(["git", "ls-files", "pipeline"], capture_output=True, text=True, cwd=REPO).stdout.split()
    assert len(code) > 30 and not [p for p in code if ignored(rules, p)]    # all of the code goes in
