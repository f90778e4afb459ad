"""Labelling with PySCF (filled in by the labelling engine issue)."""
