"""The base layer: config, paths, atomic writes, seeds, errors, tracking, plotting, the CLI frame.

Imports nothing else of the package."""
