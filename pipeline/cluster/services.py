"""PostgreSQL and the MLflow tracking server of the local cluster, started and stopped for real.

Everything lives in one folder, .cache/cluster/ ($CLUSTER_DIR):

  postgres/        PostgreSQL's data (databases mlflow, mlflow_auth and optuna, each its own user)
  artifacts/       what the MLflow server stores for the runs it proxies (--serve-artifacts)
  basic_auth.ini   MLflow's auth app: its database, the admin user and the admin's password  (0600)
  pgpass           libpq's password file: the MLflow server's database password              (0600)
  state.json       ports and the generated passwords, reused by the next `up`                 (0600)
  cluster.env      what the stages read (`set -a; . cluster.env; set +a`), and the pids       (0600)
  *.log            the two servers' logs

Passwords are random, written only to those 0600 files, and never on a command line (where `ps`
shows them to every user of the machine): the MLflow server finds its database password in the
pgpass file, the admin's in basic_auth.ini. The stages log to MLflow as the user `pipeline`, not as
the admin.
"""
from __future__ import annotations

import configparser
import fcntl
import glob
import io
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from pipeline.core import paths, process, workers
from pipeline.core.errors import PipelineError

ADMIN_USER = "admin"
PIPELINE_USER = "pipeline"          # the MLflow user the stages log as
DATABASES = {"mlflow": "mlflow", "mlflow_auth": "mlflow", "optuna": "optuna"}   # database -> owner
START_SECONDS = float(os.environ.get("CLUSTER_START_SECONDS") or 180)   # MLflow migrates a new database first
STOP_SECONDS = 20.0
ENV_KEYS = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "OPTUNA_STORAGE")


class ClusterError(PipelineError):
    """The cluster cannot start or stop: one line saying why and what to do."""


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def pgdata(self) -> Path:
        return self.root / "postgres"

    @property
    def pglog(self) -> Path:
        return self.root / "postgres.log"

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    @property
    def mlflow_log(self) -> Path:
        return self.root / "mlflow.log"

    @property
    def auth_ini(self) -> Path:
        return self.root / "basic_auth.ini"

    @property
    def pgpass(self) -> Path:
        return self.root / "pgpass"

    @property
    def state(self) -> Path:
        return self.root / "state.json"

    @property
    def env(self) -> Path:
        return self.root / "cluster.env"


def layout() -> Layout:
    return Layout(Path(os.environ.get("CLUSTER_DIR") or paths.cache_dir() / "cluster").resolve())


# --- small pieces ------------------------------------------------------------------------------

def say(message: str) -> None:
    print(f"cluster: {message}", file=sys.stderr, flush=True)


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (mode 0600 from the start, replaced atomically)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def read_env(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of an env file (comments and blank lines skipped)."""
    if not path.is_file():
        return {}
    pairs = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def client_host(host: str) -> str:
    """Where clients on this machine connect when the servers listen on `host`."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "*", "") else host


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as the servers bind: TIME_WAIT is no owner
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str) -> int:
    return workers.free_ports(1, client_host(host))[0]


def choose_port(var: str, remembered: int | None, host: str) -> int:
    """$var when set (and free), else the port the last `up` used when still free, else a free one."""
    wanted = os.environ.get(var, "").strip()
    if wanted:
        if not wanted.isdigit() or not 0 < int(wanted) < 65536:
            raise ClusterError(f"${var}: {wanted!r} is not a port number")
        if not port_free(host, int(wanted)):
            raise ClusterError(f"port {wanted} on {host} is taken (${var}): stop what uses it, or choose "
                               f"another port ({var}=...)")
        return int(wanted)
    if remembered and port_free(host, remembered):
        return remembered
    return free_port(host)


@contextmanager
def locked(root: Path) -> Iterator[None]:
    """One `up` or `down` at a time (make cluster-up twice at once still makes one cluster)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def last_error(log: Path, lines: int = 60) -> str:
    """The most telling line at the end of a server log: an exception's, FATAL or ERROR, else the last."""
    try:
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    except OSError:
        return "(no log)"
    for pattern in (r"^[\w.]+(Error|Exception): ", r"FATAL|ERROR"):
        hits = [line.strip() for line in tail if re.search(pattern, line.strip())]
        if hits:
            return hits[-1][:300]
    return (tail[-1].strip() if tail else "(empty log)")[:300]


# --- state ---------------------------------------------------------------------------------------

def load_state(lay: Layout) -> dict:
    if not lay.state.is_file():
        return {}
    try:
        return json.loads(lay.state.read_text(encoding="utf-8"))
    except ValueError:
        raise ClusterError(f"{lay.state}: damaged; `make cluster-down CLUSTER_PURGE=1` starts afresh") from None


def save_state(lay: Layout, state: dict) -> None:
    write_private(lay.state, json.dumps(state, indent=2) + "\n")


def passwords(state: dict) -> dict[str, str]:
    """The cluster's passwords: the ones it was made with, new ones for a new cluster."""
    kept = state.setdefault("passwords", {})
    # The last one is no user's: the Flask secret key the auth app's CSRF protection signs with.
    for user in ("postgres", "mlflow", "optuna", ADMIN_USER, PIPELINE_USER, "flask_secret_key"):
        kept.setdefault(user, secrets.token_urlsafe(24))   # URL- and shell-safe characters
    return kept


# --- PostgreSQL ------------------------------------------------------------------------------------

def pg_bindir() -> Path:
    """PostgreSQL's programs: $CLUSTER_PG_BINDIR, else Debian's newest /usr/lib/postgresql/N/bin, else PATH."""
    given = os.environ.get("CLUSTER_PG_BINDIR")
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(Path(d).parent.name)
                   if Path(d).parent.name.isdigit() else 0)
    on_path = shutil.which("initdb")
    candidates = [given] if given else [*reversed(found), *([str(Path(on_path).parent)] if on_path else [])]
    for folder in candidates:
        if all((Path(folder) / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return Path(folder)
    raise ClusterError("PostgreSQL is not installed (no initdb, pg_ctl and postgres in "
                       + (given if given else "/usr/lib/postgresql/*/bin or on PATH")
                       + "): apt-get install postgresql, or set CLUSTER_PG_BINDIR")


def as_postgres_user() -> list[str]:
    """PostgreSQL refuses to run as root: as root, its programs run as the user `postgres`."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise ClusterError("PostgreSQL refuses to run as root and there is no user `postgres` to run it as: "
                           "run as another user, or create one (Debian's postgresql package does)") from None
    return ["runuser", "-u", "postgres", "--"]


def check_reachable_by_postgres(root: Path) -> None:
    """As root, PostgreSQL runs as `postgres`, which must be able to reach the data folder."""
    user = as_postgres_user()
    if user and subprocess.run([*user, "test", "-x", str(root)], capture_output=True).returncode != 0:
        raise ClusterError(f"PostgreSQL runs as the user postgres (this is root), which cannot reach {root} "
                           "(a parent folder is closed to other users): set CLUSTER_DIR to a folder it can reach")


def give_to_postgres(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")


def postgres_pid(lay: Layout) -> int | None:
    """The postmaster's pid when it runs (postmaster.pid names it)."""
    try:
        first = (lay.pgdata / "postmaster.pid").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    return int(first) if first.strip().isdigit() and process.alive(int(first)) else None


def init_postgres(lay: Layout, bindir: Path, superuser_password: str) -> None:
    say(f"initialising PostgreSQL in {lay.pgdata}")
    lay.pgdata.mkdir(mode=0o700)
    give_to_postgres(lay.pgdata)
    pwfile = lay.root / ".pwfile"
    write_private(pwfile, superuser_password + "\n")
    give_to_postgres(pwfile)
    try:
        done = subprocess.run([*as_postgres_user(), str(bindir / "initdb"), "-D", str(lay.pgdata), "-U", "postgres",
                               f"--pwfile={pwfile}", "--auth=scram-sha-256", "--encoding=UTF8", "--no-locale"],
                              capture_output=True, text=True, timeout=300)
    finally:
        pwfile.unlink(missing_ok=True)
    if done.returncode != 0:
        shutil.rmtree(lay.pgdata, ignore_errors=True)
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        raise ClusterError(f"initdb failed: {lines[-1] if lines else done.returncode}")


def start_postgres(lay: Layout, bindir: Path, host: str, port: int) -> int:
    lay.pglog.touch()
    give_to_postgres(lay.pglog)
    if host not in ("127.0.0.1", "localhost", "::1"):
        hba = lay.pgdata / "pg_hba.conf"
        line = "host all all all scram-sha-256  # pipeline.cluster: listening beyond 127.0.0.1\n"
        if line not in hba.read_text():
            with hba.open("a") as f:
                f.write(line)
    # No Unix socket (TCP on `host` only), so no socket folder the postgres user must be able to write.
    options = f"-p {port} -c listen_addresses={host} -c unix_socket_directories=''"
    done = subprocess.run([*as_postgres_user(), str(bindir / "pg_ctl"), "-D", str(lay.pgdata), "-l", str(lay.pglog),
                           "-w", "-t", "60", "-o", options, "start"], capture_output=True, text=True, timeout=120)
    pid = postgres_pid(lay)
    if done.returncode != 0 or pid is None:
        raise ClusterError(f"PostgreSQL did not start: {last_error(lay.pglog)} (log: {lay.pglog})")
    return pid


def ensure_databases(host: str, port: int, pw: dict[str, str]) -> None:
    """The users mlflow and optuna and their databases, each closed to the other users."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(host=client_host(host), port=port, user="postgres", password=pw["postgres"],
                         dbname="postgres", autocommit=True, connect_timeout=10) as conn:
        for user in sorted(set(DATABASES.values())):
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone()
            conn.execute(sql.SQL("{} ROLE {} LOGIN PASSWORD {}").format(
                sql.SQL("ALTER" if exists else "CREATE"), sql.Identifier(user), sql.Literal(pw[user])))
        for db, owner in DATABASES.items():
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone():
                conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(db), sql.Identifier(owner)))
                conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(db)))


def stop_postgres(lay: Layout) -> None:
    pid = postgres_pid(lay)
    if pid is None:
        return
    try:
        bindir = pg_bindir()
        subprocess.run([*as_postgres_user(), str(bindir / "pg_ctl"), "-D", str(lay.pgdata), "-m", "fast", "-w",
                        "-t", str(int(STOP_SECONDS)), "stop"], capture_output=True, timeout=STOP_SECONDS + 30)
    except (ClusterError, subprocess.SubprocessError, OSError):
        pass
    if process.alive(pid):   # pg_ctl could not stop it: the postmaster's immediate shutdown, then kill
        _signal_and_wait([pid], signal.SIGQUIT, 10) or _signal_and_wait([pid], signal.SIGKILL, 10)
    if process.alive(pid):
        raise ClusterError(f"PostgreSQL (pid {pid}) did not stop")


# --- the MLflow server -----------------------------------------------------------------------------

def mlflow_url(host: str, port: int) -> str:
    return f"http://{client_host(host)}:{port}"


def write_server_config(lay: Layout, host: str, pg_port: int, pw: dict[str, str]) -> str:
    """basic_auth.ini and pgpass; the backend store URI (without a password: libpq reads pgpass)."""
    db = f"postgresql+psycopg://mlflow@{client_host(host)}:{pg_port}"
    write_private(lay.pgpass, f"*:*:*:mlflow:{pw['mlflow']}\n")
    auth = configparser.ConfigParser()
    # MLflow's own basic_auth.ini with our database and admin; the admin's password is used only
    # when the auth database has no admin yet (the first start).
    auth["mlflow"] = {"default_permission": "READ", "database_uri": f"{db}/mlflow_auth",
                      "admin_username": ADMIN_USER, "admin_password": pw[ADMIN_USER],
                      "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
                      # Without it every request hashes the password again (PBKDF2): 0.7 s a request
                      # here, seconds per trial. One server worker, so no other worker's cache goes stale.
                      "auth_cache_ttl_seconds": "600"}
    buffer = io.StringIO()
    auth.write(buffer)
    write_private(lay.auth_ini, "# MLflow's auth app for the local cluster (pipeline/cluster/services.py)\n"
                  + buffer.getvalue())
    return f"{db}/mlflow"


def mlflow_running(state: dict) -> int | None:
    pid, started = state.get("mlflow_pid"), state.get("mlflow_started")
    return pid if pid and process.alive(pid, started) else None


def start_mlflow(lay: Layout, host: str, port: int, backend: str, secret_key: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MLFLOW_TRACKING_") and k not in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID",
                                                                  "OPTUNA_STORAGE", "PGPASSWORD")}
    env.update(MLFLOW_AUTH_CONFIG_PATH=str(lay.auth_ini), PGPASSFILE=str(lay.pgpass), DO_NOT_TRACK="1",
               MLFLOW_FLASK_SERVER_SECRET_KEY=secret_key,
               MLFLOW_DISABLE_TELEMETRY="true",
               # No job runner (huey consumers serve only GenAI evaluation jobs; see `make ui`).
               MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    workers = os.environ.get("CLUSTER_MLFLOW_WORKERS") or "1"
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend,
           "--serve-artifacts", "--artifacts-destination", str(lay.artifacts), "--app-name", "basic-auth",
           "--host", host, "--port", str(port), "--workers", workers]
    lay.artifacts.mkdir(exist_ok=True)
    with open(lay.mlflow_log, "ab") as log:
        # A session of its own: `down` stops the server and every process it started as one group.
        return subprocess.Popen(cmd, cwd=lay.root, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def wait_answering(proc: subprocess.Popen, url: str, seconds: float, what: str, log: Path) -> None:
    """Return once GET `url` answers 2xx. ClusterError if `proc` exits first (with the telling line
    of its log) or nothing answers within `seconds` (the process is left to the caller)."""
    import requests

    deadline = time.monotonic() + seconds
    while True:
        code = proc.poll()
        if code is not None:
            raise ClusterError(f"{what} exited ({code}) while starting: {last_error(log)} (log: {log})")
        try:
            if requests.get(url, timeout=3).ok:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise ClusterError(f"{what} did not answer at {url} within {seconds:g} s (log: {log})")
        time.sleep(0.5)


def wait_healthy(lay: Layout, proc: subprocess.Popen, url: str) -> None:
    try:
        wait_answering(proc, f"{url}/health", START_SECONDS, "the MLflow server", lay.mlflow_log)
    except ClusterError:
        if proc.poll() is None:
            stop_group(proc.pid)
        raise


def ensure_pipeline_user(url: str, pw: dict[str, str]) -> None:
    """The MLflow user the stages log as (not an admin: it manages what it creates, reads the rest)."""
    import requests

    api = f"{url}/api/2.0/mlflow"
    admin = (ADMIN_USER, pw[ADMIN_USER])
    me = (PIPELINE_USER, pw[PIPELINE_USER])
    if requests.get(f"{api}/users/current", auth=me, timeout=30).ok:
        return
    found = requests.get(f"{api}/users/get", params={"username": PIPELINE_USER}, auth=admin, timeout=30)
    if found.status_code == 401:
        raise ClusterError(f"the MLflow server at {url} refuses the admin password in {layout().auth_ini}: its auth "
                           "database was made with another one (`make cluster-down CLUSTER_PURGE=1` starts afresh)")
    if found.ok:
        done = requests.patch(f"{api}/users/update-password", auth=admin, timeout=30,
                              json={"username": PIPELINE_USER, "password": pw[PIPELINE_USER]})
    else:
        done = requests.post(f"{api}/users/create", auth=admin, timeout=30,
                             json={"username": PIPELINE_USER, "password": pw[PIPELINE_USER]})
    if not done.ok or not requests.get(f"{api}/users/current", auth=me, timeout=30).ok:
        raise ClusterError(f"could not set up the MLflow user {PIPELINE_USER!r} at {url}: HTTP {done.status_code}")


def stop_group(pid: int) -> None:
    """SIGTERM to the process group `pid` leads (the MLflow server and its uvicorn workers), then SIGKILL."""
    members = group_members(pid)
    if not members:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        if _wait_gone(members, STOP_SECONDS if sig == signal.SIGTERM else 10):
            return


def group_members(pgid: int) -> list[int]:
    import psutil

    members = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def _wait_gone(pids: list[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while any(process.alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def _signal_and_wait(pids: list[int], sig: int, seconds: float) -> bool:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    return _wait_gone(pids, seconds)


# --- the env file -----------------------------------------------------------------------------------

def env_text(lay: Layout, host: str, state: dict) -> str:
    pw = state["passwords"]
    values = {
        "MLFLOW_TRACKING_URI": mlflow_url(host, state["mlflow_port"]),
        "MLFLOW_TRACKING_USERNAME": PIPELINE_USER,
        "MLFLOW_TRACKING_PASSWORD": pw[PIPELINE_USER],
        "OPTUNA_STORAGE": f"postgresql+psycopg://optuna:{pw['optuna']}@{client_host(host)}:{state['pg_port']}/optuna",
        "CLUSTER_DIR": str(lay.root),
        "CLUSTER_POSTGRES_PID": str(state["postgres_pid"]),
        "CLUSTER_MLFLOW_PID": str(state["mlflow_pid"]),
    }
    head = ("# The local cluster's settings, written by `make cluster-up` (python -m pipeline.cluster up).\n"
            "# Secret (mode 0600, git-ignored). Use: set -a; . .cache/cluster/cluster.env; set +a; dvc repro\n")
    return head + "".join(f"{k}={v}\n" for k, v in values.items())


# --- up / down / status -------------------------------------------------------------------------------

def up() -> Layout:
    """Start what is not running; write cluster.env. Running it twice leaves one cluster."""
    lay = layout()
    with locked(lay.root):
        os.chmod(lay.root, 0o755)   # the postgres user (when we are root) must reach postgres/
        state = load_state(lay)
        new_state = not state
        pw = passwords(state)
        host = os.environ.get("CLUSTER_HOST") or state.get("host") or "127.0.0.1"
        state["host"] = host
        bindir = pg_bindir()
        check_reachable_by_postgres(lay.root)
        pg = postgres_pid(lay)
        if pg is None:
            fresh = not (lay.pgdata / "PG_VERSION").is_file()
            if not fresh and new_state:
                raise ClusterError(f"{lay.pgdata} holds a database but {lay.state} is gone (its passwords with "
                                   "it): `make cluster-down CLUSTER_PURGE=1` starts afresh")
            state["pg_port"] = choose_port("CLUSTER_PG_PORT", state.get("pg_port"), host)
            if fresh:
                shutil.rmtree(lay.pgdata, ignore_errors=True)
                init_postgres(lay, bindir, pw["postgres"])
            save_state(lay, state)
            pg = start_postgres(lay, bindir, host, state["pg_port"])
            say(f"PostgreSQL {bindir.parent.name} up on {host}:{state['pg_port']} (pid {pg})")
        else:
            say(f"PostgreSQL already up on {host}:{state['pg_port']} (pid {pg})")
        state["postgres_pid"] = pg
        ensure_databases(host, state["pg_port"], pw)
        save_state(lay, state)

        backend = write_server_config(lay, host, state["pg_port"], pw)
        url = mlflow_url(host, state.get("mlflow_port") or 0)
        if mlflow_running(state) is None:
            state["mlflow_port"] = choose_port("CLUSTER_MLFLOW_PORT", state.get("mlflow_port"), host)
            url = mlflow_url(host, state["mlflow_port"])
            say(f"starting the MLflow server on {host}:{state['mlflow_port']} (log: {lay.mlflow_log})")
            proc = start_mlflow(lay, host, state["mlflow_port"], backend, pw["flask_secret_key"])
            state["mlflow_pid"] = proc.pid
            state["mlflow_started"] = process.started(proc.pid)
            save_state(lay, state)
            wait_healthy(lay, proc, url)
        else:
            say(f"MLflow server already up at {url} (pid {state['mlflow_pid']})")
        ensure_pipeline_user(url, pw)
        save_state(lay, state)
        write_private(lay.env, env_text(lay, host, state))
    say(f"up: MLflow {url} (user {PIPELINE_USER}), Optuna storage postgresql://optuna@{client_host(host)}:"
        f"{state['pg_port']}/optuna; settings in {lay.env}")
    return lay


def down(purge: bool = False) -> None:
    """Stop the MLflow server and PostgreSQL; keep their data unless `purge`."""
    lay = layout()
    if not lay.root.is_dir():
        say("no cluster here")
        return
    with locked(lay.root):
        state = load_state(lay)
        pid = mlflow_running(state)
        if pid is not None:
            stop_group(pid)
            if group_members(pid):
                raise ClusterError(f"the MLflow server (process group {pid}) did not stop")
            say(f"MLflow server stopped (pid {pid})")
        pg = postgres_pid(lay)
        if pg is not None:
            stop_postgres(lay)
            say(f"PostgreSQL stopped (pid {pg})")
        lay.env.unlink(missing_ok=True)
        for key in ("mlflow_pid", "mlflow_started", "postgres_pid"):
            state.pop(key, None)
        if state:
            save_state(lay, state)
        if purge:
            # Everything but the lock we hold; the folder goes with it afterwards.
            for child in lay.root.iterdir():
                if child.name != ".lock":
                    shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    if purge:
        shutil.rmtree(lay.root, ignore_errors=True)
        say(f"purged {lay.root}")
    else:
        say(f"down; data kept in {lay.root} (CLUSTER_PURGE=1 removes it)")


def status() -> bool:
    """Print what runs; whether the whole cluster is up and answering."""
    import requests

    lay = layout()
    state = load_state(lay)
    pg = postgres_pid(lay)
    ml = mlflow_running(state)
    healthy = False
    if ml is not None:
        try:
            healthy = requests.get(f"{mlflow_url(state['host'], state['mlflow_port'])}/health", timeout=5).ok
        except requests.RequestException:
            pass
    print(f"postgres: {'up, pid %d, port %s' % (pg, state.get('pg_port')) if pg else 'down'}")
    print(f"mlflow:   {'up, pid %d, %s' % (ml, mlflow_url(state['host'], state['mlflow_port'])) if ml else 'down'}"
          + ("" if healthy or ml is None else " (not answering)"))
    print(f"env file: {lay.env if lay.env.is_file() else '(none)'}")
    return bool(pg and ml and healthy and lay.env.is_file())
