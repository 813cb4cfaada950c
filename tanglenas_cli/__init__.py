"""tanglenas: one-shot neural architecture search with weight entanglement."""

__version__ = "0.1.0"
