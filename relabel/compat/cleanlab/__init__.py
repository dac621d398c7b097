"""cleanlab 2.9's module names over relabel's implementations: change the import, keep the calls.

May import: relabel's scoring layer and the shared modules; never cleanlab itself.
"""
