"""The tutorials' experiments as named configurations (experiments/*.yaml), run with `dvc exp run`
and compared in MLflow: `python -m pipeline.experiments --help`."""
from pipeline.core.environment import require_project_python

require_project_python()   # one line, not a traceback, under the wrong Python
