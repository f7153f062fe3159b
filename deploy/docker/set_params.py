#!/usr/bin/env python
"""textclf-params: params.yaml with a few keys changed, for a pod that must differ from the image's.

    textclf-params -S train.distribute=multi_worker     # writes params.cluster.yaml beside params.yaml
    python -m pipeline.train --params params.cluster.yaml

The image's params.yaml stays the one source (the study name and dvc.lock depend on it) and only the
named keys change. Each -S is in the grammar of `dvc exp run -S` and is applied as DVC applies it
(pipeline/core/overrides.py): KEY must already exist (+KEY=VALUE adds, ~KEY deletes); VALUE is read
as Hydra reads it (`3`, `true`, `[a,b]`; quote text that is not a plain word: 'KEY="행정"'). The
result is checked as the stages check params.yaml before it is written, so a bad override fails here
with the stage's message. Written beside params.yaml: relative paths in it (stopwords_file,
dataset.table.source) still hold. (A stage's own -S does the same for one run, without a file.)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="textclf-params", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-S", "--set-param", dest="assignments", action="append", required=True,
                        metavar="KEY=VALUE", help="a key of params.yaml, in dvc exp run -S's grammar (repeatable)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--out", type=Path, help="default: params.cluster.yaml beside --params")
    args = parser.parse_args(argv)
    # The stages' own reader and checks, and DVC's own application of -S.
    from dvc.utils.serialize import dumps_yaml

    from pipeline.core.atomic import atomic_file
    from pipeline.core.config import check_params, read_params_data
    from pipeline.core.errors import PipelineError

    out = args.out or args.params.with_name("params.cluster.yaml")
    try:
        raw, source = read_params_data(args.params, args.assignments)   # as a stage's -S reads it
        check_params(raw, source)
        with atomic_file(out) as tmp:   # a temp file beside it, then os.replace: never half a file
            # Written as DVC writes params.yaml after -S (ruamel.yaml, YAML 1.2), so read back the same:
            # PyYAML (YAML 1.1) would write the text "1e-3" or "0o17" unquoted, and ruamel reads a number.
            tmp.write_text(dumps_yaml(raw), encoding="utf-8")
    except PipelineError as error:
        raise SystemExit(f"textclf-params: {error}") from None
    print(f"textclf-params: {out}: {source}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
