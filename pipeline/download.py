"""`python -m pipeline.download`: the download stage (pipeline/stages/download.py), kept as the documented command."""
import sys

from pipeline.stages.download import main

if __name__ == "__main__":
    sys.exit(main())
