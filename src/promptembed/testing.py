"""Tiny random-weight models for tests, notebooks and benchmarks (no network needed).

The builders write complete sentence-transformers folders: a WordPiece tokenizer from a stored vocabulary, a
random-weight transformer and the module stack of the model family they imitate. The vectors are
meaningless, but every code path (prompts, title slots, Dense layers, Matryoshka truncation, dtype
rules) runs exactly as on the real model.

Example:
    >>> import tempfile
    >>> from promptembed.testing import build_tiny_embeddinggemma
    >>> path = build_tiny_embeddinggemma(tempfile.mkdtemp())
    >>> (path / "config_sentence_transformers.json").exists()
    True
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

__all__ = [
    "EMBEDDINGGEMMA_PROMPTS",
    "PLANET_DOCS",
    "RED_PLANET_QUERY",
    "build_tiny_bert",
    "build_tiny_embeddinggemma",
    "build_tiny_router",
]

_P = ParamSpec("_P")
_R = TypeVar("_R")

#: The EmbeddingGemma release post's example: the query and its four planet sentences; Mars is the answer.
RED_PLANET_QUERY = "Which planet is known as the Red Planet?"
PLANET_DOCS = (
    "Venus is often called Earth's twin because of its similar size and proximity.",
    "Mars, known for its reddish appearance, is often referred to as the Red Planet.",
    "Jupiter, the largest planet in our solar system, has a prominent red spot.",
    "Saturn, famous for its rings, is sometimes mistaken for the Red Planet.",
)

#: EmbeddingGemma's saved prompt table, as published in its release post.
EMBEDDINGGEMMA_PROMPTS: dict[str, str] = {
    "query": "task: search result | query: ",
    "document": "title: none | text: ",
    "BitextMining": "task: search result | query: ",
    "Clustering": "task: clustering | query: ",
    "Classification": "task: classification | query: ",
    "InstructionRetrieval": "task: code retrieval | query: ",
    "MultilabelClassification": "task: classification | query: ",
    "PairClassification": "task: sentence similarity | query: ",
    "Reranking": "task: search result | query: ",
    "Retrieval-query": "task: search result | query: ",
    "Retrieval-document": "title: none | text: ",
    "STS": "task: sentence similarity | query: ",
    "Summarization": "task: summarization | query: ",
}

#: The tiny models' WordPiece vocabularies (cased for Gemma, uncased for BERT), after the four special tokens. A
#: ``tokenizers`` WordPieceTrainer(vocab_size=400) learned them once from a few lines of prompts and planet sentences;
#: the trainer breaks ties in another order in every process, so a vocabulary learned at build time gave every test
#: session another tiny model. Stored, every session builds the same one.
_VOCAB_FILE = Path(__file__).with_name("_tiny_vocab.json")


def _train_tokenizer(path: Path, *, bos: str, eos: str, pad: str, unk: str, lowercase: bool) -> None:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = [pad, unk, bos, eos]
    learned = json.loads(_VOCAB_FILE.read_text(encoding="utf-8"))["uncased" if lowercase else "cased"]
    vocab = {token: i for i, token in enumerate([*specials, *learned])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token=unk, max_input_chars_per_word=100))
    tok.add_special_tokens(specials)
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} $B:1 {eos}:1",
        special_tokens=[(bos, tok.token_to_id(bos)), (eos, tok.token_to_id(eos))],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=bos, eos_token=eos, pad_token=pad, unk_token=unk, model_max_length=512
    )
    fast.save_pretrained(str(path))


def _write_st_config(path: Path, prompts: dict[str, str], modules: list[dict[str, object]]) -> None:
    (path / "modules.json").write_text(json.dumps(modules, indent=2))
    config = {"prompts": prompts, "default_prompt_name": None, "similarity_fn_name": "cosine"}
    (path / "config_sentence_transformers.json").write_text(json.dumps(config, indent=2))


def _keeps_torch_rng(build: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run a builder with its own torch random state: the caller's seeded stream goes on as if it had not run."""

    @functools.wraps(build)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        import torch

        with torch.random.fork_rng(devices=[]):
            return build(*args, **kwargs)

    return wrapper


@_keeps_torch_rng
def build_tiny_embeddinggemma(
    path: str | Path,
    *,
    hidden: int = 32,
    dense: int = 128,
    max_seq_length: int = 64,
    prompts: dict[str, str] | None = None,
    seed: int = 0,
) -> Path:
    """Write a tiny random Gemma3 encoder with EmbeddingGemma's module stack and prompt table.

    The stack is Transformer -> mean Pooling -> Dense(hidden->dense) -> Dense(dense->hidden) -> Normalize,
    as in EmbeddingGemma (768 -> 3072 -> 768), scaled down. Its README declares Matryoshka dims
    (``matryoshka_dims: [hidden, hidden/2, hidden/4]``, those of 4 or more) as EmbeddingGemma's card does.

    Args:
        path: Folder to write (created if missing).
        hidden: Transformer width and output dimension.
        dense: Width of the middle Dense layer.
        max_seq_length: Maximum tokens per input.
        prompts: Prompt table; EmbeddingGemma's when None.
        seed: Torch seed for the random weights.

    Returns:
        The folder, loadable by ``SentenceTransformer`` and ``PromptEmbedder``.
    """
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Dense, Normalize, Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling
    from transformers import Gemma3TextConfig, Gemma3TextModel

    out = Path(path)
    hf_dir = out / "_hf"
    hf_dir.mkdir(parents=True, exist_ok=True)
    _train_tokenizer(hf_dir, bos="<bos>", eos="<eos>", pad="<pad>", unk="<unk>", lowercase=False)
    torch.default_generator.manual_seed(seed)  # the CPU only (the weights are made there), not the GPUs
    config = Gemma3TextConfig(
        vocab_size=400,
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        max_position_embeddings=max_seq_length * 2,
        sliding_window=16,
        layer_types=["sliding_attention", "full_attention"],
        use_bidirectional_attention=True,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
    )
    config.architectures = ["Gemma3TextModel"]
    Gemma3TextModel(config).save_pretrained(str(hf_dir))
    transformer = Transformer(str(hf_dir), max_seq_length=max_seq_length)
    pooling = Pooling(hidden, pooling_mode="mean")
    dense_up = Dense(hidden, dense, bias=False, activation_function=torch.nn.Identity())
    dense_down = Dense(dense, hidden, bias=False, activation_function=torch.nn.Identity())
    model = SentenceTransformer(
        modules=[transformer, pooling, dense_up, dense_down, Normalize()],
        prompts=dict(EMBEDDINGGEMMA_PROMPTS if prompts is None else prompts),
        similarity_fn_name="cosine",
    )
    model.save(str(out))
    _remove_tree(hf_dir)
    dims = [d for d in (hidden, hidden // 2, hidden // 4) if d >= 4]
    (out / "README.md").write_text(
        "# tiny EmbeddingGemma-shaped test model\n\nRandom weights. Trained with MatryoshkaLoss "
        f"(as EmbeddingGemma is, 768/512/256/128), matryoshka_dims: {dims}\n",
        encoding="utf-8",
    )
    return out


@_keeps_torch_rng
def build_tiny_bert(path: str | Path, *, hidden: int = 32, max_seq_length: int = 32, seed: int = 0) -> Path:
    """Write a tiny random BERT with mean pooling, no Normalize module and no prompts.

    Args:
        path: Folder to write (created if missing).
        hidden: Transformer width and output dimension.
        max_seq_length: Maximum tokens per input (small, so truncation is easy to trigger).
        seed: Torch seed for the random weights.

    Returns:
        The folder, loadable by ``SentenceTransformer`` and ``PromptEmbedder``.
    """
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling
    from transformers import BertConfig, BertModel

    out = Path(path)
    hf_dir = out / "_hf"
    hf_dir.mkdir(parents=True, exist_ok=True)
    _train_tokenizer(hf_dir, bos="[CLS]", eos="[SEP]", pad="[PAD]", unk="[UNK]", lowercase=True)
    torch.default_generator.manual_seed(seed)  # the CPU only (the weights are made there), not the GPUs
    config = BertConfig(
        vocab_size=400,
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=max(128, max_seq_length),
    )
    config.architectures = ["BertModel"]
    BertModel(config).save_pretrained(str(hf_dir))
    transformer = Transformer(str(hf_dir), max_seq_length=max_seq_length)
    model = SentenceTransformer(modules=[transformer, Pooling(hidden, pooling_mode="mean")])
    model.save(str(out))
    _remove_tree(hf_dir)
    return out


@_keeps_torch_rng
def build_tiny_router(path: str | Path, *, seed: int = 0) -> Path:
    """Write a tiny asymmetric model: a shared tiny BERT, then a ``Router`` with a query and a document ``Dense``.

    sentence-transformers routes ``encode_query`` through the query branch and ``encode_document`` (or
    ``encode(task=...)``) through the named branch, so the same text gets different vectors per task.

    Args:
        path: Folder to write (created if missing).
        seed: Torch seed for the random weights.

    Returns:
        The folder, loadable by ``SentenceTransformer`` and ``PromptEmbedder``.
    """
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Dense, Router

    out = Path(path)
    bert = SentenceTransformer(str(build_tiny_bert(out / "_bert", seed=seed)), device="cpu")
    dim = bert.get_embedding_dimension() or 32
    torch.default_generator.manual_seed(seed + 1)
    router = Router.for_query_document(query_modules=[Dense(dim, dim)], document_modules=[Dense(dim, dim)])
    SentenceTransformer(modules=[bert[0], bert[1], router], device="cpu").save(str(out))
    _remove_tree(out / "_bert")
    return out


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
