"""`python -m pipeline.evaluate`: the evaluate stage (pipeline/stages/evaluate.py), kept as the documented command."""
import sys

from pipeline.stages.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
