"""relabel: find and fix label errors in Label Studio projects.

    from relabel import Annotations, consensus, crowdlab, find_label_issues

The layers live in subpackages (the README section "How the code is laid out" draws them); what users import
is re-exported here, and ``relabel.compat.cleanlab`` mirrors cleanlab 2.9's module names for a one-line switch.
"""
from relabel.scoring.active import get_active_learning_scores
from relabel.scoring.ensemble import get_active_learning_scores_ensemble
from relabel.scoring.annotations import Annotations
from relabel.scoring.audit import AuditEstimate, draw_audit, estimate_wrong_labels
from relabel.scoring.confident import find_label_issues, get_label_quality_scores
from relabel.about import DISTRIBUTION, __version__
from relabel.results import ConsensusResult
from relabel.scoring.consensus_em import consensus
from relabel.scoring.consensus import crowdlab, get_label_quality_multiannotator, get_majority_vote_label
from relabel.scoring.multilabel import MultilabelConsensus, multilabel_consensus
from relabel.errors import RelabelError
from relabel.models.spans import span_consensus

__all__ = ["Annotations", "AuditEstimate", "ConsensusResult", "RelabelError", "consensus", "crowdlab",
           "draw_audit", "estimate_wrong_labels", "find_label_issues", "get_active_learning_scores",
           "get_active_learning_scores_ensemble", "get_label_quality_multiannotator", "get_label_quality_scores",
           "get_majority_vote_label", "multilabel_consensus", "MultilabelConsensus", "span_consensus", "DISTRIBUTION",
           "__version__"]
