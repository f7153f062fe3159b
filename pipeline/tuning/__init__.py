"""Hyperparameter search with Optuna: storages, the study, the objective (one trial = one fit), outputs."""
