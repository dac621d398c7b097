"""Drop-in namespaces that mirror other libraries' module names, so switching to relabel is one import line.

``relabel.compat.cleanlab`` mirrors cleanlab 2.9 (``multiannotator``, ``filter``, ``count``, ``rank``). Modules
here are thin re-exports of relabel's implementations in :mod:`relabel.scoring` (and, for the functions that
cross-validate a classifier, :mod:`relabel.models`); they hold no algorithm of their own. Layer: app. compat may
import scoring and models; nothing below the app layer imports compat.
"""
