"""The package's name and version, in a module of their own so that any layer can read them without importing
the public API in relabel/__init__.py (which imports the scoring layer)."""

__version__ = "0.1.0"
# The name to `pip install` (the import name is `relabel`; "relabel" on PyPI is an unrelated package).
DISTRIBUTION = "relabel-loop"
