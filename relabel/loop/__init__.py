"""The loop layer: one relabel round and what it remembers.

rounds (`Loop`: collect, pull, score, select, push, chained into a round), whose steps are functions over one state
object (loop_state) in collect_step, pull_step, score_step (the numbers in round_scores) and push_step, with their
summaries in summaries; project_setup (`initialise`, `relabel init`); store (`Store`, the only SQLite user, put
together from store_schema, store_sql, store_pull, store_items, store_rounds, store_review and store_embeddings);
decisions (reviewers' answers turned into decisions), lock (one writer per store), writeback and export (final
labels out).

May import: connectors/, config, models/, scoring/ and the small shared modules. Never report/, service/ or the
app modules (cli, demo).
"""
