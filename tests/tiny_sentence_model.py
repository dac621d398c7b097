"""Build a tiny, randomly initialised sentence-transformers model on disk, so tests never download anything."""
from __future__ import annotations

from pathlib import Path

WORDS = ("the a and of is on in to cat cats dog dogs kitten sat mat rug barked ran "
         "stock stocks market markets price prices fell rose shares trading bank").split()


def build_tiny_model(directory: Path, seed: int = 0) -> Path:
    """Save a 1-layer, 16-dim BERT with a WordPiece vocab and mean pooling; return the model directory."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizer

    directory = Path(directory)
    bert_dir = directory / "bert"
    bert_dir.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    (bert_dir / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    config = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(bert_dir)
    BertTokenizer(str(bert_dir / "vocab.txt")).save_pretrained(bert_dir)
    transformer = Transformer(str(bert_dir), max_seq_length=32)
    pooling = Pooling(16, "mean")
    model_dir = directory / "sentence-model"
    SentenceTransformer(modules=[transformer, pooling], device="cpu").save(str(model_dir))
    return model_dir
