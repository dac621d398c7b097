"""Drop-in namespaces that mirror other libraries' module names over relabel's own implementations."""
