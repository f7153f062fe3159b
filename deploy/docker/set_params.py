#!/usr/bin/env python
"""textclf-params: params.yaml with a few keys changed, for a pod that must differ from the image's.

    textclf-params train.distribute=multi_worker        # writes params.cluster.yaml beside params.yaml
    python -m pipeline.train --params params.cluster.yaml

The stages have no per-key override, only `--params FILE`; the image's params.yaml stays the one
source (the study name and dvc.lock depend on it) and only the named keys change. Each KEY must
already exist; VALUE is read as YAML (`3`, `true`, `[a, b]`). The result is checked as the stages
check params.yaml before it is written, so a bad override fails here with the stage's message.
Written beside params.yaml: relative paths in it (stopwords_file, dataset.table.source) still hold.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml


def parse(assignment: str) -> tuple[str, object]:
    """KEY=VALUE as (KEY, VALUE read as YAML); an empty VALUE is the empty string."""
    key, sep, text = assignment.partition("=")
    if not sep or not key:
        raise SystemExit(f"textclf-params: {assignment!r}: expected KEY=VALUE")
    return key, yaml.safe_load(text) if text.strip() else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="textclf-params", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("assignments", nargs="+", metavar="KEY=VALUE")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--out", type=Path, help="default: params.cluster.yaml beside --params")
    args = parser.parse_args(argv)
    # The stages' own reader and checks, and the experiments' dotted-key override (as `dvc exp run -S`).
    from pipeline.core.config import check_params, read_yaml
    from pipeline.core.errors import PipelineError
    from pipeline.experiments.spec import apply

    overrides = dict(parse(a) for a in args.assignments)
    out = args.out or args.params.with_name("params.cluster.yaml")
    try:
        raw = apply(read_yaml(args.params), overrides, str(args.params))
        check_params(raw, source=f"{args.params} with {' '.join(args.assignments)}")
    except PipelineError as error:
        raise SystemExit(f"textclf-params: {error}") from None
    out.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True), encoding="utf-8")
    print(f"textclf-params: {out}: {args.params} with {', '.join(args.assignments)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
