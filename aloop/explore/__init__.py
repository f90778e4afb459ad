"""Exploration: committee-driven MD walkers, trust-window classification, selection."""
