"""cleanlab 2.9's module names over relabel's implementations: ``from relabel.compat.cleanlab import outlier``."""
