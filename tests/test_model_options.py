"""Options that reach the model when it loads: passed through, part of the shared-model identity, token never shown."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from promptembed import ConfigError, ModelLoadError, PromptEmbedder, _registry

SECRET = "hf_not-a-real-token-0123456789"


def test_options_reach_the_loaded_model(tiny_bert_dir: Path) -> None:
    with PromptEmbedder(
        model=tiny_bert_dir,
        model_kwargs={"attn_implementation": "eager"},
        tokenizer_kwargs={"padding_side": "left"},
        config_kwargs={"hidden_dropout_prob": 0.25},
        max_seq_length=8,
    ) as emb:
        st = emb._require().model
        assert st[0].auto_model.config._attn_implementation == "eager"
        assert st[0].auto_model.config.hidden_dropout_prob == 0.25
        assert st.tokenizer.padding_side == "left"
        assert st.max_seq_length == 8 and emb.max_seq_length == 8


def test_max_seq_length_gives_the_vectors_of_sentence_transformers(tiny_bert_dir: Path) -> None:
    texts = ["a fairly long text " * 5, "short"]
    ref = SentenceTransformer(str(tiny_bert_dir), device="cpu")
    ref.max_seq_length = 8
    with PromptEmbedder(model=tiny_bert_dir, max_seq_length=8) as emb:
        np.testing.assert_allclose(
            emb.embed_documents(texts), ref.encode_document(texts, normalize_embeddings=True), atol=2e-6
        )


def test_different_load_options_are_different_models_same_ones_share(tiny_bert_dir: Path) -> None:
    before = _registry.load_count
    with (
        PromptEmbedder(model=tiny_bert_dir) as plain,
        PromptEmbedder(model=tiny_bert_dir, model_kwargs={"attn_implementation": "eager"}) as eager,
        PromptEmbedder(model=tiny_bert_dir, model_kwargs={"attn_implementation": "eager"}) as eager_again,
        PromptEmbedder(model=tiny_bert_dir, config_kwargs={"hidden_dropout_prob": 0.2}) as config,
        PromptEmbedder(model=tiny_bert_dir, max_seq_length=8) as short,
        PromptEmbedder(model=tiny_bert_dir, cache_folder="elsewhere", local_files_only=True) as local,
    ):
        models = [e._require().model for e in (plain, eager, config, short)]
        assert len({id(m) for m in models}) == 4
        assert eager_again._require().model is eager._require().model
        # where hub downloads go cannot change a local folder's model: shared
        assert local._require().model is plain._require().model
        assert _registry.load_count == before + 4


def test_spellings_of_one_device_share_one_loaded_model(tiny_bert_dir: Path) -> None:
    before = _registry.load_count
    with (
        PromptEmbedder(model=tiny_bert_dir, device="cpu") as cpu,
        PromptEmbedder(model=tiny_bert_dir, device="cpu:0") as cpu0,
    ):
        assert cpu0._require().model is cpu._require().model
        assert cpu0.device == "cpu" and _registry.load_count == before + 1  # "cpu:0" loaded a second copy


def test_token_never_in_plain_text(tiny_bert_dir: Path) -> None:
    with (
        PromptEmbedder(model=tiny_bert_dir, token=SECRET) as a,
        PromptEmbedder(model=tiny_bert_dir, model_kwargs={"token": SECRET}) as b,
        PromptEmbedder(model=tiny_bert_dir, token="hf_another-token") as c,
    ):
        key = a._require().key
        assert key.token is not None and SECRET not in key.token
        assert b._require().model is a._require().model  # a token inside model_kwargs is the same token
        assert c._require().model is not a._require().model
        for shown in (repr(key), repr(a), str(a.config()), repr(_registry.loaded_keys())):
            assert SECRET not in shown
        assert "token" not in a.config() and "token" not in str(b.config()["model_kwargs"])


def test_two_different_tokens_are_an_error(tiny_bert_dir: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape("model_kwargs['token'] and token= give two different tokens")):
        PromptEmbedder(model=tiny_bert_dir, token="a", model_kwargs={"token": "b"})


def test_dtype_inside_model_kwargs(tiny_bert_dir: Path) -> None:
    import torch

    with PromptEmbedder(model=tiny_bert_dir, model_kwargs={"torch_dtype": torch.float32}) as emb:
        assert emb.dtype == "float32" and emb.config()["dtype"] == "float32"
        assert emb.config()["model_kwargs"] is None
    with pytest.raises(ConfigError, match=re.escape("dtype='float32' and model_kwargs dtype 'bfloat16' disagree")):
        PromptEmbedder(model=tiny_bert_dir, dtype="float32", model_kwargs={"dtype": "bfloat16"})
    with pytest.raises(ConfigError, match=re.escape("model_kwargs['torch_dtype']='int4' is not a weight dtype")):
        PromptEmbedder(model=tiny_bert_dir, model_kwargs={"torch_dtype": "int4"})


@pytest.mark.parametrize("key", ["torch_dtype", "dtype"])
def test_hugging_face_auto_dtype_loads_the_checkpoints_dtype_as_sentence_transformers(
    tiny_bert_dir: Path, tmp_path: Path, key: str
) -> None:
    import torch

    saved = tmp_path / "bf16"
    SentenceTransformer(str(tiny_bert_dir), device="cpu").to(torch.bfloat16).save(str(saved))
    texts = ["Mars is red.", "Venus is Earth's twin. It is hot and its air is thick."]
    want = SentenceTransformer(str(saved), device="cpu", model_kwargs={key: "auto"}).encode(texts)
    with PromptEmbedder(
        model=saved, device="cpu", model_kwargs={key: "auto"}, normalize=False, engine="sentence-transformers"
    ) as emb:
        assert emb.dtype == "bfloat16"  # was float32: promptembed's own "auto", not the checkpoint's dtype
        np.testing.assert_array_equal(emb.embed(texts), want)
    with PromptEmbedder(model=saved, device="cpu") as emb:  # promptembed's "auto": float32 on a CPU (README)
        assert emb.dtype == "float32"
    with PromptEmbedder(model=tiny_bert_dir, device="cpu", model_kwargs={key: "auto"}) as emb:
        assert emb.dtype == "float32"  # saved in float32


def test_auto_dtype_reads_a_router_models_routes_and_keeps_gemma_out_of_float16(
    tiny_bert_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import torch
    from sentence_transformers.base.modules import Router, Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling

    from promptembed.testing import build_tiny_embeddinggemma

    # a Router whose routes hold the Transformers (their config.json in route subfolders), saved in float16: the
    # checkpoint's dtype was not found there, so model_kwargs dtype "auto" gave float32 where sentence-transformers
    # loads float16
    hf = tmp_path / "hf"
    inner = SentenceTransformer(str(tiny_bert_dir), device="cpu")[0]
    inner.auto_model.half().save_pretrained(str(hf))
    inner.tokenizer.save_pretrained(str(hf))
    routes = [[Transformer(str(hf), max_seq_length=32), Pooling(32)] for _ in range(2)]
    router = tmp_path / "router"
    SentenceTransformer(
        modules=[Router.for_query_document(query_modules=routes[0], document_modules=routes[1])], device="cpu"
    ).save(str(router))
    with PromptEmbedder(model=router, device="cpu", model_kwargs={"torch_dtype": "auto"}) as emb:
        assert emb.dtype == "float16"
    # a Gemma-family checkpoint saved in float16 overflows there: "auto" keeps promptembed's safe dtype, and says so
    gemma = tmp_path / "gemma16"
    SentenceTransformer(str(build_tiny_embeddinggemma(tmp_path / "gemma")), device="cpu").to(torch.float16).save(
        str(gemma)
    )
    with caplog.at_level("WARNING", "promptembed"):
        emb = PromptEmbedder(model=gemma, device="cpu", model_kwargs={"torch_dtype": "auto"})  # was a ConfigError
    with emb:
        assert emb.dtype == "float32"
    assert "was saved in float16, which overflows in a gemma3_text model" in caplog.text


def test_pickle_through_model_kwargs_names_allow_pickle(tiny_bert_dir: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape("pass allow_pickle=True instead")):
        PromptEmbedder(model=tiny_bert_dir, model_kwargs={"use_safetensors": False})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backend": "tensorrt"}, "Unknown backend 'tensorrt'; use one of ['torch', 'onnx', 'openvino']"),
        ({"backend": "onnx", "dtype": "bfloat16"}, "dtype='bfloat16' applies to the torch backend only"),
        ({"model_kwargs": ["a"]}, "model_kwargs must be a dict of keyword arguments or None"),
        ({"local_files_only": "yes"}, "local_files_only must be True or False"),
        ({"max_seq_length": 0}, "max_seq_length must be an int >= 1 or None"),
    ],
)
def test_bad_load_options(tiny_bert_dir: Path, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        PromptEmbedder(model=tiny_bert_dir, **kwargs)  # type: ignore[arg-type]


def test_a_backend_that_cannot_load_is_a_model_load_error(tiny_bert_dir: Path) -> None:
    pytest.importorskip("sentence_transformers")
    try:
        import optimum  # noqa: F401

        pytest.skip("optimum is installed: the ONNX backend would load")
    except ImportError:
        pass
    with pytest.raises(ModelLoadError, match=re.escape("Could not load model from the local folder")):
        PromptEmbedder(model=tiny_bert_dir, backend="onnx")


def test_config_round_trip_with_load_options(tiny_bert_dir: Path) -> None:
    with PromptEmbedder(
        model=tiny_bert_dir, tokenizer_kwargs={"model_max_length": 20}, max_seq_length=8, precision="ubinary"
    ) as emb:
        with PromptEmbedder(**emb.config()) as again:
            assert again._require().model is emb._require().model
            assert again.config() == emb.config()


def test_max_seq_length_beyond_the_position_embeddings_is_a_clear_error(tiny_bert_dir: Path) -> None:
    # tiny BERT: 128 position embeddings, max_seq_length 32; sentence-transformers would fail only at a long text
    with pytest.raises(ConfigError, match=r"max_seq_length=129 is more than this model's 128 learned position"):
        PromptEmbedder(model=tiny_bert_dir, max_seq_length=129)
    with PromptEmbedder(model=tiny_bert_dir, max_seq_length=128) as emb:
        assert emb.max_seq_length == 128
        assert emb.embed_documents(["word " * 300]).shape == (1, 32)


def test_max_seq_length_of_a_rotary_model_is_not_capped_by_its_config(tiny_gemma_dir: Path) -> None:
    # Gemma3 uses rotary positions: max_position_embeddings is no hard limit, so promptembed does not refuse more
    ref = SentenceTransformer(str(tiny_gemma_dir), device="cpu")
    limit = ref[0].auto_model.config.max_position_embeddings
    ref.max_seq_length = limit + 50
    text = ["word " * (limit + 100)]
    with PromptEmbedder(model=tiny_gemma_dir, max_seq_length=limit + 50) as emb:
        np.testing.assert_allclose(emb.embed_documents(text), ref.encode_document(text), atol=2e-5)


def test_the_roberta_position_offset_counts() -> None:
    from promptembed._loading import _position_limit

    class Config:
        model_type, max_position_embeddings, pad_token_id = "xlm-roberta", 514, 1

    class Module:
        auto_model = type("Auto", (), {"config": Config})()

    assert _position_limit([Module()]) == 512  # type: ignore[arg-type]
    Config.model_type = "gemma3_text"
    assert _position_limit([Module()]) is None  # type: ignore[arg-type]
