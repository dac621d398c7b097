"""The loop layer: one relabel round and what it remembers.

rounds (collect, pull, score, select, push; `Loop` and `initialise`), model_phase (the round's model inputs, the
model cache beside the store, the model fitted ahead for relabel serve), store (the only SQLite user), decisions
(reviewers' answers turned into decisions), lock (one writer per store), writeback and export (final labels out).

May import: connectors/, config, models/, scoring/ and the small shared modules. Never report/, service/ or the
app modules (cli, demo).
"""
