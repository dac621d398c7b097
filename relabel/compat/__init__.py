"""Drop-in namespaces for other libraries' APIs, implemented by relabel (relabel/compat/cleanlab/: cleanlab 2.9's
module names).

May import: relabel's public layers (scoring, models, loop) and scikit-learn; never cleanlab itself.
"""
