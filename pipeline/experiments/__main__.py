"""`python -m pipeline.experiments`: see pipeline/experiments/cli.py."""
import sys

from pipeline.experiments.cli import main

sys.exit(main())
