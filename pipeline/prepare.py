"""`python -m pipeline.prepare`: the prepare stage (pipeline/stages/prepare.py), kept as the documented command."""
import sys

from pipeline.stages.prepare import main

if __name__ == "__main__":
    sys.exit(main())
