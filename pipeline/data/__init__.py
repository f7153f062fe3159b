"""Datasets and arrays: the dataset registry, downloads, readers, token sequences, splits, the prepared data."""
