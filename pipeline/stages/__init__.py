"""The six DVC stages, each a thin `main()`: read params, call the library, write outputs, log.

Stages import the library and never each other."""
from pipeline.core.environment import require_project_python

require_project_python()   # one line, not a traceback, under the wrong Python
