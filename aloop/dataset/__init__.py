"""Curated datasets: choosing, filtering, splitting and writing labelled structures."""
