"""A real HTTP server on 127.0.0.1 for download tests: in-memory files plus misbehaviours."""
from __future__ import annotations

import http.server
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.core import workers


@dataclass
class Site:
    """In-memory content plus per-path misbehaviours, shared with the handler threads."""

    base: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    drop_first_n: dict[str, int] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)
    interrupt: set[str] = field(default_factory=set)  # send half, then SIGINT the client
    no_length: set[str] = field(default_factory=set)  # omit Content-Length (EOF ends body)
    hits: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return self.base + path


def make_handler(site: Site) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:
            with site.lock:
                site.hits[self.path] += 1
                n = site.hits[self.path]
            if self.path in site.status:
                self.send_error(site.status[self.path])
                return
            body = site.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            if self.path not in site.no_length:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if n <= site.drop_first_n.get(self.path, 0):
                # Promise the full length, deliver half, hang up (HTTP/1.0 closes on return).
                self.wfile.write(body[: len(body) // 2])
                return
            if self.path in site.interrupt:
                self._send_then_interrupt(body)
                return
            self.wfile.write(body)

        def _send_then_interrupt(self, body: bytes) -> None:
            # A real SIGINT delivered mid-download, like a user pressing Ctrl-C.
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
            time.sleep(0.2)
            try:
                self.wfile.write(body[len(body) // 2 :])
            except OSError:
                pass  # client already went away

    return Handler


def serve() -> Iterator[Site]:
    """Run a server until the generator is closed (wrapped as the `site` fixture)."""
    state = Site()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    host, port = server.server_address[:2]
    state.base = f"http://{host}:{port}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def free_port() -> int:
    return workers.free_ports(1)[0]


@contextmanager
def server_process(argv: list[str], port: int, ready_path: str, log_path: Path, wait: float,
                   **popen) -> Iterator[str]:
    """A server started as `argv` (its own process group, output in log_path) listening on `port`:
    its base URL once GET `ready_path` answers, waited for as `make cluster-up` waits for its MLflow
    server. The whole group is stopped on exit."""
    from pipeline.cluster.services import wait_answering

    base = f"http://127.0.0.1:{port}"
    with log_path.open("w") as log:
        server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **popen)
        try:
            wait_answering(server, base + ready_path, wait, " ".join(argv[2:4]), log_path)   # "mlflow server"
            yield base
        finally:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)
