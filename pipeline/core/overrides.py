"""`-S key=value`: the one override grammar for params.yaml, the one `dvc exp run -S` parses (Hydra's).

    train.epochs=3                    change a key params.yaml has (an unknown key is an error)
    'dataset.classes=["행정","경제"]'   values in Hydra's grammar: quote text that is not a plain word
    +tune.space.epochs={type:int,low:5,high:20}      add a key
    ~tune.space.maxlen                delete a key

`apply_overrides` applies them to params data exactly as `dvc exp run -S` applies them to the file
(dvc.utils.hydra.apply_overrides, which it calls the pieces of): Hydra's OverridesParser, then
ConfigLoaderImpl._apply_overrides_to_config on an OmegaConf struct config, then DVC's merge back into
the data (the file's key order kept). The stages' `-S` (core/cli.py), `textclf-params` (deploy/docker)
and the experiments' check of their params (experiments/spec.py) all go through it, so what they accept
is what `dvc exp run -S` accepts. `set_param_args` writes values in that grammar (experiments/commands.py
prints the `dvc exp run` lines with it).

Hydra, OmegaConf and DVC are imported when an override is applied: importing this module stays cheap.
"""
from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from pipeline.core.errors import ParamsError

KEY = re.compile(r"[A-Za-z_][\w.]*")   # a dotted params.yaml key, as experiment files and -S name them


def hydra_value(value: Any) -> str:
    """A value in Hydra's override grammar, which `dvc exp run -S` parses."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ParamsError(f"{value!r}: not a finite number")
        return repr(value)
    if isinstance(value, str):
        # Quoted always: unquoted Hydra strings cannot hold Hangul, spaces or most punctuation.
        # Inside quotes Hydra reads a backslash as an escape only before a quote (or before more
        # backslashes and then a quote), so only those runs are doubled: regexes keep their \d.
        # Double quotes, so the shell line printed with single quotes around each argument reads well.
        quoted = re.sub(r'(\\*)"', lambda m: m.group(1) * 2 + '\\"', value)
        return '"' + re.sub(r"(\\+)$", lambda m: m.group(1) * 2, quoted) + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str) or not KEY.fullmatch(key):
                raise ParamsError(f"{key!r}: a mapping key in an override must be a plain name")
        return "{" + ",".join(f"{k}:{hydra_value(v)}" for k, v in value.items()) + "}"
    raise ParamsError(f"{value!r}: unsupported value type {type(value).__name__}")


def set_param_args(overrides: Mapping[str, Any]) -> list[str]:
    """`-S` arguments for `dvc exp run` (or a stage) from dotted keys and Python values. A mapping
    (tune.space) replaces params.yaml's whole, as a list does; a plain `key={...}` would merge into it
    (Hydra), keeping dimensions the file left out."""
    args: list[str] = []
    for key, value in overrides.items():
        if isinstance(value, dict):
            args += ["-S", f"~{key}", "-S", f"+{key}={hydra_value(value)}"]
        else:
            args += ["-S", f"{key}={hydra_value(value)}"]
    return args


def assignments(overrides: Mapping[str, Any]) -> list[str]:
    """set_param_args without the "-S" flags: what apply_overrides takes."""
    return set_param_args(overrides)[1::2]


def for_file(assignments: Sequence[str], path: str | Path) -> list[str]:
    """The assignments without a `FILE:` prefix naming `path` (dvc exp run -S's `params.yaml:key=value`);
    a prefix naming another file is an error (the stages read one params file)."""
    plain = []
    for assignment in assignments:
        target = assignment.partition("=")[0]
        if ":" in target:   # as dvc.utils.cli_parse.to_path_overrides splits them
            file, _, assignment = assignment.partition(":")
            if Path(file) != Path(path) and Path(file).name != Path(path).name:
                raise ParamsError(f"-S {file}:{assignment}: sets a key of {file}, but the params file here is "
                                  f"{path} (leave out the file, or pass --params {file})")
        plain.append(assignment)
    return plain


def parse_assignments(assignments: Sequence[str], where: str) -> dict[str, Any]:
    """KEY=VALUE assignments as {dotted key: Python value}, each VALUE read in -S's grammar (Hydra's),
    for the typed in-memory path (config.override: a bench's --set over the tuned train config)."""
    from dvc.utils.hydra import to_hydra_overrides
    from hydra.errors import OverrideParseException

    values: dict[str, Any] = {}
    for assignment in assignments:
        try:
            (override,) = to_hydra_overrides([assignment])
        except OverrideParseException as exc:
            raise ParamsError(f"{where} {assignment}: {_parse_error(assignment, exc)}") from None
        if (override.is_delete() or override.is_add() or override.is_force_add() or override.package is not None
                or override.is_sweep_override()):
            raise ParamsError(f"{where} {assignment}: expected KEY=VALUE (one value; no +, ~ or @ here)")
        values[override.key_or_group] = override.value()
    return values


def apply_overrides(data: Mapping, assignments: Sequence[str], where: str) -> dict:
    """A copy of params data with `-S`-style assignments applied as `dvc exp run -S` applies them.

    `where` names the data (the params file) in errors: a bad assignment is one ParamsError,
    `<where> with -S <assignment>: <key>: <what is wrong>`.
    """
    result = copy.deepcopy(dict(data))
    if not assignments:
        return result
    from dvc.utils.collections import merge_dicts, remove_missing_keys, to_omegaconf
    from dvc.utils.hydra import to_hydra_overrides
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.errors import ConfigCompositionException, OverrideParseException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    config = OmegaConf.create(to_omegaconf(result), flags={"allow_objects": True})   # a copy, as DVC makes
    OmegaConf.set_struct(config, True)
    for assignment in assignments:
        said = f"{where} with -S {assignment}"
        try:
            # One at a time, so an error names its assignment; Hydra applies a list in order all the same.
            (override,) = to_hydra_overrides([assignment])
        except OverrideParseException as exc:
            raise ParamsError(f"{said}: {_parse_error(assignment, exc)}") from None
        if override.is_sweep_override():
            raise ParamsError(f"{said}: a sweep (several values) is for `dvc exp run --queue`; give one value")
        try:
            ConfigLoaderImpl._apply_overrides_to_config([override], config)
        except (ConfigCompositionException, OmegaConfBaseException) as exc:
            raise ParamsError(f"{said}: {_composition_error(override, _as_data(config), exc)}") from None
    try:
        new = OmegaConf.to_object(config)
    except OmegaConfBaseException as exc:   # an interpolation (${...}) that does not resolve
        raise ParamsError(f"{where} with -S {' -S '.join(assignments)}: {_one_line(exc)}") from None
    # As DVC writes the result back over the file's data: keys keep their place, deleted ones go.
    merge_dicts(result, new)
    remove_missing_keys(result, new)
    return result


def _as_data(config: Any) -> Any:
    """The config as it stands (after the assignments before the failing one), unresolved."""
    from omegaconf import OmegaConf

    try:
        return OmegaConf.to_container(config, resolve=False)
    except Exception:   # only the wording of the error depends on it
        return {}


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _parse_error(assignment: str, exc: BaseException) -> str:
    """Hydra's parse error in one line (without its caret line and link)."""
    lines = [line for line in str(exc).splitlines() if line.strip() and not line.startswith("See https://")]
    lexer = "LexerNoViableAltException: "
    reason = "; ".join(line.strip() for line in lines) or type(exc).__name__
    hint = ""
    if lines and lines[0].startswith(lexer) and len(lines) > 1 and "^" in lines[1]:
        pos = lines[1].index("^") - len(lexer)
        if 0 <= pos < len(assignment):
            reason = f"unexpected {assignment[pos]!r} at character {pos + 1}"
            if "=" in assignment[:pos]:
                hint = ("; quote a text value that is not a plain word (Hangul, spaces, most punctuation): "
                        "key=\"행정\", in single quotes in a shell")
    if "=" not in assignment.lstrip("~"):
        hint = "; expected KEY=VALUE (or +KEY=VALUE to add, ~KEY to delete)"
    return f"not in dvc exp run -S's grammar (Hydra's override grammar): {reason}{hint}"


def _find(data: Any, key: str) -> tuple[bool, str, str]:
    """Whether the dotted key is in the data; if not, the first part that is missing (dotted), and a key
    of its parent that holds dots and starts the rest (tune.space's "model.units"), if there is one."""
    node = data
    parts = key.split(".")
    for i, part in enumerate(parts):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            rest = ".".join(parts[i:])
            dotted = next((k for k in (node if isinstance(node, dict) else ()) if isinstance(k, str) and "." in k
                           and (rest == k or rest.startswith(k + "."))), "")
            return False, ".".join(parts[:i + 1]), dotted
    return True, key, ""


def _composition_error(override: Any, data: Any, exc: BaseException) -> str:
    """What is wrong with an override Hydra could not apply, in the words params.yaml's errors use."""
    key = override.key_or_group
    present, missing, dotted = _find(data, key)
    if override.package is not None:
        return f"{key}@{override.package}: a config group override (Hydra); params.yaml has no config groups"
    if override.is_delete() and not present:
        return f"{key}: cannot delete it: not in params.yaml"
    if override.is_add() and present:
        return f"{key}: already in params.yaml: leave out the + to change it"
    if dotted:
        section = missing.rpartition(".")[0]
        return (f"{key}: {section}'s key {dotted!r} holds a dot, and -S splits keys at dots (Hydra, as dvc exp "
                f"run); set the whole section instead: -S ~{section} -S '+{section}={{...}}'")
    if not present and not override.is_add() and not override.is_force_add():
        if missing != key:
            return f"{key}: no such section in params.yaml ({missing})"
        return f"{key}: unknown key (not in params.yaml)"
    cause = exc.__cause__
    return f"{key}: {_one_line(exc)}" + (f" ({_one_line(cause)})" if cause is not None else "")
