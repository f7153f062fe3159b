"""What tests/test_deploy_k8s.py reads deploy/ with: kustomize output, pod templates, the Dockerfile
and .dockerignore. Small readers for exactly what deploy/ uses, each saying what it leaves out."""
from __future__ import annotations

import base64
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import yaml

from helpers import REPO

DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


# --- kustomize --------------------------------------------------------------------------------

def kustomize_command() -> list[str] | None:
    """A real kustomize: the standalone binary, else the one built into kubectl (`kubectl kustomize`)."""
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


def render(command: list[str], directory: Path) -> list[dict]:
    done = subprocess.run([*command, str(directory)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{' '.join(command)} {directory}:\n{done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def key(doc: dict) -> tuple[str, str]:
    return doc["kind"], doc["metadata"]["name"]


def secret_values(doc: dict) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (doc.get("data") or {}).items()}


# --- pod templates ----------------------------------------------------------------------------

@dataclass
class Pod:
    """One pod template of a rendered resource: `where` names it (Job/tune-workers, TFJob/train/Chief)."""
    where: str
    owner: dict
    template: dict
    spec: dict = field(init=False)

    def __post_init__(self):
        self.spec = self.template["spec"]

    def containers(self, init: bool = True) -> Iterator[dict]:
        yield from self.spec.get("containers", [])
        if init:
            yield from self.spec.get("initContainers", [])

    def gpus(self) -> int:
        return sum(int(c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu", 0)) for c in self.containers())


def pods(docs: list[dict]) -> list[Pod]:
    found = []
    for doc in docs:
        kind, name = key(doc)
        if kind in ("Deployment", "StatefulSet", "Job", "DaemonSet", "ReplicaSet"):
            found.append(Pod(f"{kind}/{name}", doc, doc["spec"]["template"]))
        elif kind == "CronJob":
            found.append(Pod(f"{kind}/{name}", doc, doc["spec"]["jobTemplate"]["spec"]["template"]))
        elif kind == "TFJob":
            for replica, spec in doc["spec"]["tfReplicaSpecs"].items():
                found.append(Pod(f"{kind}/{name}/{replica}", doc, spec["template"]))
        elif kind == "Pod":
            found.append(Pod(f"{kind}/{name}", doc, doc))
    return found


_UNITS = {"m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
          "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def quantity(value) -> float:
    """A Kubernetes quantity ("250m", "2", "4Gi") as a number; exponent forms are not used here."""
    match = re.fullmatch(r"([0-9.]+)(m|k|M|G|T|Ki|Mi|Gi|Ti)?", str(value))
    assert match, f"not a quantity this reader knows: {value!r}"
    return float(match[1]) * _UNITS[match[2] or ""]


# --- Dockerfile -------------------------------------------------------------------------------

INSTRUCTIONS = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
                "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL", "MAINTAINER"}


@dataclass
class Instruction:
    line: int
    keyword: str
    args: str


def dockerfile_instructions(text: str) -> list[Instruction]:
    """Dockerfile instructions as BuildKit's parser splits them: comment lines dropped (inside a
    continued instruction too), `\\` continues a line, the first word is the instruction. Heredocs
    (`<<EOF` bodies) and a changed escape character are not handled: it refuses files using them."""
    out: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            if re.match(r"#\s*escape\s*=", line):
                raise ValueError(f"line {number}: the escape directive is not handled")
            continue
        if pending and line.startswith("#"):
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending.append(line[:-1].strip())
            continue
        pending.append(line)
        joined = " ".join(part for part in pending if part)
        pending = []
        keyword, _, args = joined.partition(" ")
        if keyword.upper() not in INSTRUCTIONS:
            raise ValueError(f"line {start}: unknown instruction {keyword!r}")
        if re.search(r"<<-?\s*['\"]?[A-Za-z_]+", args) and keyword.upper() in ("RUN", "COPY"):
            raise ValueError(f"line {start}: heredocs are not handled")
        out.append(Instruction(start, keyword.upper(), args.strip()))
    if pending:
        raise ValueError("the file ends inside a continued line")
    return out


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[Instruction]


def dockerfile_stages(instructions: list[Instruction]) -> tuple[dict[str, str], list[Stage]]:
    """(global ARG defaults, the stages in order); FROM's `--platform` flag is not handled."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            words = ins.args.split()
            assert not words[0].startswith("--"), f"line {ins.line}: FROM flags are not handled"
            name = words[2] if len(words) == 3 and words[1].lower() == "as" else ""
            assert len(words) in (1, 3), f"line {ins.line}: FROM IMAGE [AS NAME] expected"
            stages.append(Stage(name, words[0], []))
        elif not stages:
            assert ins.keyword == "ARG", f"line {ins.line}: only ARG may come before the first FROM"
            name, _, default = ins.args.partition("=")
            global_args[name] = default.strip('"')
        else:
            stages[-1].instructions.append(ins)
    return global_args, stages


def substitute(text: str, values: dict[str, str]) -> str:
    """${NAME} and $NAME from `values`; the `${NAME:-default}` forms are not used here."""
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: values[m[1] or m[2]], text)


# --- .dockerignore ----------------------------------------------------------------------------

def _pattern_regex(pattern: str) -> re.Pattern:
    """One .dockerignore pattern as Docker's matcher reads it: `**` any number of folders, `*` and
    `?` within one path element, a leading `/` dropped. Character classes `[...]` are not handled."""
    pattern = pattern.strip().lstrip("/").rstrip("/")
    assert "[" not in pattern, f"character classes are not handled: {pattern}"
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def dockerignore_rules(text: str) -> list[tuple[bool, re.Pattern]]:
    rules = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        rules.append((negate, _pattern_regex(line[1:] if negate else line)))
    return rules


def ignored(rules: list[tuple[bool, re.Pattern]], path: str) -> bool:
    """Whether the build context leaves `path` out: the last rule matching it, or a folder above
    it, decides (`!` rules put paths back)."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    result = False
    for negate, regex in rules:
        if any(regex.fullmatch(p) for p in prefixes):
            result = not negate
    return result
