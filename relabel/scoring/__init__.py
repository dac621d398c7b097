"""The scoring layer: numbers in, numbers out, over the sparse long-format annotation table.

annotations (the encoded table), consensus / consensus_em / fitted_em / dawid_skene (consensus labels and
quality), confident (confident learning), active (ActiveLab), agreement (annotator agreement), calibration,
error_estimate and stop_signal (how many wrong labels are left, and whether another batch is worth it),
selection (which items go to review, and why), validation (input checks shared by the public functions),
multilabel (consensus tag sets from several annotators and a model) and multilabel_confident (confident
learning one class at a time, cleanlab's multi-label functions).

May import: numpy, scipy, pandas and relabel's small shared modules (errors, results). Never models/, loop/,
connectors/, report/, service/ or the app modules: scoring works on arrays a user can build without Label Studio.
"""
