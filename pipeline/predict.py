"""`python -m pipeline.predict`: label raw texts with a trained model (pipeline/serve/predict.py)."""
import sys

from pipeline.core.environment import require_project_python

require_project_python()   # one line, not a traceback, under the wrong Python

from pipeline.serve.predict import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
