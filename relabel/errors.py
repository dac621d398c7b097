"""Exceptions raised by relabel.

Every message names the bad value, the item, annotator or setting it belongs to, and the fix.

    RelabelError                      base of everything relabel raises on purpose
     ├── InputError (ValueError)      bad data handed to a public function
     │    ├── PredProbsError          pred_probs: NaN, negative, rows not summing to 1, wrong shape
     │    ├── LabelError              labels outside the classes, not integers, too few classes
     │    └── AnnotationError         items with no label, too few annotators, all items singly labelled
     │         └── SpanError          spans past the text's end, overlapping spans of one annotator, empty labels
     ├── ConfigError (ValueError)     a setting in relabel.toml or on the command line is wrong or missing
     ├── ConnectorError               the outside system (Label Studio) refused, failed or is unreachable
     │    ├── AuthError               the API key is missing, wrong or cannot see what relabel needs
     │    └── OutcomeUnknown          a write was sent and no answer came back: it may or may not have landed
     └── StoreError                   the SQLite store is missing, locked or from another project
          └── StoreLocked             another relabel command is writing to the store right now
"""


class RelabelError(Exception):
    """Base class of every error relabel raises on purpose."""


class InputError(RelabelError, ValueError):
    """Bad data handed to a public function."""


class PredProbsError(InputError):
    """pred_probs are not a valid N x K matrix of probabilities."""


class LabelError(InputError):
    """Labels are not integers in range, or there are too few classes."""


class AnnotationError(InputError):
    """The annotation table cannot be scored as given."""


class SpanError(AnnotationError):
    """A span annotation cannot be scored: outside its text, overlapping another of the same annotator, no label."""


class ConfigError(RelabelError, ValueError):
    """A configuration setting is wrong or missing."""


class MethodChoiceError(ConfigError, AssertionError):
    """A method argument names no method; an AssertionError too because cleanlab raises that there (the cleanlab
    drop-in keeps the exception type its callers catch, e.g. cleanlab.token_classification's sentence_score_method)."""


class ConnectorError(RelabelError):
    """The outside system refused a request, failed or could not be reached."""


class AuthError(ConnectorError):
    """The API key is missing, wrong, or cannot see what relabel needs."""


class OutcomeUnknown(ConnectorError):
    """A write (POST) was sent but its answer was lost: it may or may not have landed. Re-check, never re-send."""


class StoreError(RelabelError):
    """The SQLite store cannot be used."""


class StoreLocked(StoreError):
    """Another relabel command holds the store's writer lock (see relabel/loop/lock.py)."""


def preview(values, limit: int = 5) -> str:
    """A short, readable list of offending values for an error message: 'a, b, c and 4 more'."""
    values = list(values)
    shown = ", ".join(repr(v) if isinstance(v, str) else str(v) for v in values[:limit])
    rest = len(values) - limit
    return f"{shown} and {rest} more" if rest > 0 else shown
