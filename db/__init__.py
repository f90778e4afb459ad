"""Data layer: mongoengine documents, connection and repository functions."""
