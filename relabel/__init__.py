"""relabel: find and fix label errors in Label Studio projects.

    from relabel import Annotations, crowdlab, find_label_issues
    from relabel.consensus import consensus        # relabel's default consensus

(``consensus`` is not re-exported here: the name belongs to the ``relabel.consensus`` module.)
"""
from .active import get_active_learning_scores
from .annotations import Annotations
from .confident import find_label_issues, get_label_quality_scores
from .consensus import ConsensusResult, crowdlab, get_label_quality_multiannotator, get_majority_vote_label
from .errors import RelabelError

__version__ = "0.1.0"
# The name to `pip install` (the import name is `relabel`; "relabel" on PyPI is an unrelated package).
DISTRIBUTION = "relabel-loop"
__all__ = ["Annotations", "ConsensusResult", "RelabelError", "crowdlab", "find_label_issues",
           "get_active_learning_scores", "get_label_quality_multiannotator", "get_label_quality_scores",
           "get_majority_vote_label", "DISTRIBUTION", "__version__"]
