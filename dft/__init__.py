"""Labelling with PySCF: an ASE calculator, the SCF recovery ladder, the geometry guard
and parallel batch labelling. Depends on aloop/ only; returns plain data."""
