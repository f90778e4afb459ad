"""Data layer: mongoengine documents, the connection, and one module per aggregate
(campaigns, iterations, structures, labels, models, datasets) that reads and writes them."""
