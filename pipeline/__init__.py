"""Reproducible text classification with recurrent networks: DVC stages under one package."""
__version__ = "0.1.0"
