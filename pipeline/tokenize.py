"""`python -m pipeline.tokenize`: the tokenize stage (pipeline/stages/tokenize.py), kept as the documented command."""
import sys

from pipeline.stages.tokenize import main

if __name__ == "__main__":
    sys.exit(main())
