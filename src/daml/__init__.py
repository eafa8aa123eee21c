"""Reproduction of "Difficulty-Aware Meta-Learning for Cross-Domain Face Forgery Detection".

The package holds every computation of the workflow; `scripts/` only unpack Snakemake's
objects and call into it. Stages mirror each other: `data` (synthetic benchmark and
dataset readers), `frames`, `faces`, `meta`/`train`/`adapt`/`evaluate`, `tables`,
`figures`, `report`.
"""

__version__ = "0.1.0"
