"""The tutorials' experiments as named configurations (experiments/*.yaml), run with `dvc exp run`
and compared in MLflow: `python -m pipeline.experiments --help`."""
