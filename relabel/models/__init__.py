"""The model layer: item features and out-of-sample predicted probabilities.

fit (cross-validated pred_probs, ModelSettings), search (choosing the pipeline on the project's own labels),
pipelines and classifiers (the candidates), model_cache (what is kept between rounds: n-gram counts by text,
the chosen pipeline, a model fitted ahead), featurizers, hashed_tfidf, onnx_embed, embed_dask and vector_files
(where features come from).

May import: scoring/ and the small shared modules (errors, progress, about). Never loop/, connectors/, report/,
service/, config or the app modules: a model is fitted from arrays and settings, not from a store.
"""
