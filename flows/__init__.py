"""Prefect flows wrapping aloop/ and dft/ and persisting through db/."""
