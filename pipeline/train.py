"""`python -m pipeline.train`: the train stage (pipeline/stages/train.py), kept as the documented command."""
import sys

from pipeline.stages.train import main

if __name__ == "__main__":
    sys.exit(main())
