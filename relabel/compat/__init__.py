"""Drop-in namespaces that mirror other libraries' module names over relabel's own implementations.

May import: every relabel layer (compat is an app-level module: thin re-exports); never the mirrored library.
"""
