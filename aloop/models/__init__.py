"""MACE committee: training with provenance, hash-checked loading, batched inference."""
