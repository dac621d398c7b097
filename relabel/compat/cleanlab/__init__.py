"""cleanlab 2.9's module names over relabel's implementations: change the import, keep the calls."""
