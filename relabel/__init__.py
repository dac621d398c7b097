"""relabel: find and fix label errors in Label Studio projects."""
from .annotations import Annotations
from .errors import RelabelError

__version__ = "0.1.0"
__all__ = ["Annotations", "RelabelError", "__version__"]
