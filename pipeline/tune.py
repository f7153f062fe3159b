"""`python -m pipeline.tune`: the tune stage (pipeline/stages/tune.py), kept as the documented command."""
import sys

from pipeline.stages.tune import main

if __name__ == "__main__":
    sys.exit(main())
