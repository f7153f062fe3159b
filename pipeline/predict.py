"""`python -m pipeline.predict`: label raw texts with a trained model (pipeline/serve/predict.py)."""
import sys

from pipeline.serve.predict import main

if __name__ == "__main__":
    sys.exit(main())
