"""The token-budget engine: batch planning, vectors equal to sentence-transformers whatever the batching, paths."""

from __future__ import annotations

import gc
import itertools
import os
import re
import threading
import weakref
from pathlib import Path

import numpy as np
import pytest

from promptembed import PromptEmbedder, engine
from promptembed.engine import _features, _run
from promptembed.engine._plan import pad_rows, plan_batches, windows
from promptembed.errors import ConfigError

ATOL = 2e-6

# Mixed lengths: empty, one word, sentences, a paragraph, and texts over the tiny models' token limits.
MIXED = [
    "",
    "Mars",
    "Which planet is known as the Red Planet?",
    "Venus is often called Earth's twin because of its similar size and proximity. " * 3,
    "a",
    "Jupiter, the largest planet in our solar system, has a prominent red spot.",
    "word " * 300,
    "Saturn is famous for its rings.",
    "hello world " * 20,
    "?",
    "Mars, known for its reddish appearance, is often referred to as the Red Planet. " * 6,
    "search engine retrieval",
]


def _st(path: Path):  # type: ignore[no-untyped-def]
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(path), device="cpu")


# ----------------------------------------------------------------------------------------- planning (no model)
def test_plan_covers_every_text_once_within_budget_longest_first() -> None:
    rng = np.random.default_rng(0)
    lengths = [int(x) for x in rng.integers(1, 300, size=500)]
    for budget in (1, 7, 64, 1000, 10**6):
        batches = plan_batches(lengths, budget)
        seen = np.concatenate([b.index for b in batches])
        assert sorted(seen.tolist()) == list(range(500))
        for b in batches:
            assert b.width == max(lengths[i] for i in b.index)
            assert len(b.index) == 1 or b.padded_tokens <= budget
            assert [lengths[i] for i in b.index] == sorted((lengths[i] for i in b.index), reverse=True)
        assert [b.width for b in batches] == sorted((b.width for b in batches), reverse=True)


def test_plan_never_mixes_keys_and_applies_offset() -> None:
    lengths = [5, 9, 3, 9, 1, 4]
    keys = ["a", "b", "a", "a", "b", "b"]
    batches = plan_batches(lengths, 100, keys=keys, offset=10)
    assert {b.key for b in batches} == {"a", "b"}
    for b in batches:
        assert {keys[i - 10] for i in b.index} == {b.key}
    assert sorted(np.concatenate([b.index for b in batches]).tolist()) == list(range(10, 16))


def test_windows_double_and_cover() -> None:
    spans = windows(10_000, first=512, largest=4096)
    assert spans[0] == (0, 512) and spans[-1][1] == 10_000
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    assert max(e - s for s, e in spans) <= 4096 + 4096 // 2
    assert windows(3, first=512, largest=4096) == [(0, 3)]
    assert windows(0, first=8, largest=8) == []


def test_pad_rows_right_and_left() -> None:
    np.testing.assert_array_equal(pad_rows([[1, 2], [3]], 3, 0, left=False), [[1, 2, 0], [3, 0, 0]])
    np.testing.assert_array_equal(pad_rows([[1, 2], [3], []], 3, 9, left=True), [[9, 1, 2], [9, 9, 3], [9, 9, 9]])


# ----------------------------------------------------------------------------------------- vectors vs reference
@pytest.mark.parametrize("budget", [1, 7, 50, 333, 1_000_000])
def test_mixed_lengths_odd_budgets_match_reference_in_input_order(minilm_dir: Path, budget: int) -> None:
    texts = MIXED * 3
    ref = _st(minilm_dir).encode_document(texts, normalize_embeddings=True)
    with PromptEmbedder(model=minilm_dir, device="cpu", max_batch_tokens=budget) as emb:
        got = emb.embed_documents(texts)
    np.testing.assert_allclose(got, ref, atol=ATOL)


@pytest.mark.parametrize("budget", [3, 64, None])
def test_tiny_gemma_queries_documents_titles_match_reference(tiny_gemma_dir: Path, budget: int | None) -> None:
    st = _st(tiny_gemma_dir)
    titles = [None, "Mars", None, "Venus", "a title", None, None, "x", None, "Saturn", None, "Red"]
    with PromptEmbedder(model=tiny_gemma_dir, device="cpu", max_batch_tokens=budget) as emb:
        assert engine.path_for(emb._require(), engine="auto", pool=None, task="document") == "pad"
        np.testing.assert_allclose(
            emb.embed_queries(MIXED), st.encode_query(MIXED, normalize_embeddings=True), atol=ATOL
        )
        got = emb.embed_documents(MIXED, titles=titles)
        # titles give each text its own prompt; the engine batches them together (the pooling includes the prompt)
        for i, (text, title) in enumerate(zip(MIXED, titles, strict=True)):
            prompt = f"title: {title or 'none'} | text: "
            ref = st.encode([text], prompt=prompt, normalize_embeddings=True)
            np.testing.assert_allclose(got[i : i + 1], ref, atol=ATOL)
        np.testing.assert_allclose(
            emb.embed(MIXED, prompt_name="STS"),
            st.encode(MIXED, prompt_name="STS", normalize_embeddings=True),
            atol=ATOL,
        )


@pytest.fixture
def prompt_excluding_dir(tiny_bert_dir: Path, tmp_path: Path) -> Path:
    """A tiny BERT with query/document prompts whose mean pooling excludes the prompt tokens (include_prompt=False)."""
    model = _st(tiny_bert_dir)
    model.prompts = {"query": "query: ", "document": "passage: hello world "}
    model.set_pooling_include_prompt(False)
    out = tmp_path / "prompt-excluding"
    model.save(str(out))
    return out


def test_pooling_that_excludes_the_prompt_matches_reference(prompt_excluding_dir: Path) -> None:
    st = _st(prompt_excluding_dir)
    assert st[1].include_prompt is False
    with PromptEmbedder(model=prompt_excluding_dir, device="cpu", max_batch_tokens=40) as emb:
        assert not _features.mixes_prompts(emb._require().model)
        q, d = emb.embed_queries(MIXED), emb.embed_documents(MIXED)
        r = emb.embed(MIXED, prompt="raw prefix: ")
    np.testing.assert_allclose(q, st.encode_query(MIXED, normalize_embeddings=True), atol=ATOL)
    np.testing.assert_allclose(d, st.encode_document(MIXED, normalize_embeddings=True), atol=ATOL)
    np.testing.assert_allclose(r, st.encode(MIXED, prompt="raw prefix: ", normalize_embeddings=True), atol=ATOL)
    # an engine that dropped prompt_length (pooling over the prompt tokens too) would give these vectors instead
    st.set_pooling_include_prompt(True)
    assert np.abs(q - st.encode_query(MIXED, normalize_embeddings=True)).max() > 1e-3


def test_left_padding_tokenizer_matches_reference(tiny_bert_dir: Path) -> None:
    """Left padding shifts a BERT's absolute positions, so with it a text's vector depends on its batch's width (in
    sentence-transformers too). Both sides therefore run all texts as one batch of the same width here."""
    st = _st(tiny_bert_dir)
    st.tokenizer.padding_side = "left"
    with PromptEmbedder(model=tiny_bert_dir, device="cpu", max_batch_tokens=10**6) as emb:
        emb._require().model.tokenizer.padding_side = "left"
        try:
            assert engine.path_for(emb._require(), engine="auto", pool=None, task=None) == "pad"
            got = emb.embed(MIXED)
        finally:
            emb._require().model.tokenizer.padding_side = "right"
            _features._parity.clear()
    ref = st.encode(MIXED, batch_size=len(MIXED), normalize_embeddings=True)
    np.testing.assert_allclose(got, ref, atol=ATOL)


def test_preprocess_path_when_parity_fails(minilm_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_features, "check_parity", lambda model, task: False)
    texts = MIXED * 2
    with PromptEmbedder(model=minilm_dir, device="cpu", max_batch_tokens=100) as emb:
        assert engine.path_for(emb._require(), engine="auto", pool=None, task="query") == "preprocess"
        got = emb.embed_queries(texts)
    np.testing.assert_allclose(got, _st(minilm_dir).encode_query(texts, normalize_embeddings=True), atol=ATOL)


def test_sentence_transformers_engine_is_todays_loop(minilm_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    original = _run.run
    monkeypatch.setattr(_run, "run", lambda *a, **k: calls.append(1) or original(*a, **k))
    with PromptEmbedder(model=minilm_dir, device="cpu", engine="sentence-transformers", batch_size=4) as old:
        assert engine.path_for(old._require(), engine=old.engine, pool=None, task="document") == "st-loop"
        a = old.embed_documents(MIXED)
    assert calls == []
    with PromptEmbedder(model=minilm_dir, device="cpu") as new:
        b = new.embed_documents(MIXED)
    assert calls == [1]
    np.testing.assert_allclose(a, b, atol=ATOL)


def test_compile_engine_matches_reference_and_runs_one_text_eagerly(
    tiny_gemma_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``engine="compile"``: torch.compile of the model, made once per loaded model, used for batches of two or more
    rows; a one-text call runs the eager model (no compile of a one-row graph on a query)."""
    rows_seen: list[int] = []
    real_compile = engine._compile

    def spy(model):  # type: ignore[no-untyped-def]
        compiled = real_compile(model)

        def forward(features, **kwargs):  # type: ignore[no-untyped-def]
            rows_seen.append(int(features["input_ids"].shape[0]))
            return compiled(features, **kwargs)

        return forward

    monkeypatch.setattr(engine, "_compile", spy)
    st = _st(tiny_gemma_dir)
    with PromptEmbedder(model=tiny_gemma_dir, device="cpu", max_batch_tokens=256, engine="compile") as emb:
        assert emb.engine == "compile" and emb.config()["engine"] == "compile"  # PromptEmbedder(**config()) keeps it
        docs = emb.embed_documents(MIXED)
        entry = emb._require()
        assert entry.compiled is not None and rows_seen and min(rows_seen) >= 2
        np.testing.assert_allclose(docs, st.encode_document(MIXED, normalize_embeddings=True), atol=1e-5)
        first = entry.compiled
        seen = len(rows_seen)
        one = emb.embed_queries(MIXED[2:3])
        assert len(rows_seen) == seen  # the one-text call did not reach the compiled model
        np.testing.assert_allclose(one, st.encode_query(MIXED[2:3], normalize_embeddings=True), atol=ATOL)
        np.testing.assert_allclose(
            emb.embed_queries(MIXED), st.encode_query(MIXED, normalize_embeddings=True), atol=1e-5
        )
        assert entry.compiled is first  # compiled once per loaded model
        del first  # (it holds the model)
        assert len(rows_seen) > seen  # the queries batches went through it
        seen = len(rows_seen)
        with PromptEmbedder(model=tiny_gemma_dir, device="cpu") as plain:  # the same loaded model
            assert plain._require() is entry
            plain.embed_documents(MIXED)
        assert len(rows_seen) == seen  # the default engine never uses the compiled model
        import multiprocessing

        child = multiprocessing.get_context("fork").Process(target=_exit_1_if_any_entry_is_compiled)
        child.start()
        child.join(timeout=120)
        assert child.exitcode == 0  # a forked child drops the parent's compiled model (its kernels' thread count)
        assert entry.compiled is not None  # the parent keeps it
        model_ref = weakref.ref(entry.model)
    gc.collect()
    assert model_ref() is None and entry.compiled is None  # the last release frees the model, compiled wrapper too


def _exit_1_if_any_entry_is_compiled() -> None:
    from promptembed import _registry

    os._exit(1 if any(e.compiled is not None for e in _registry._entries.values()) else 0)


def test_truncate_dim_and_no_normalize_on_device(tiny_gemma_dir: Path) -> None:
    st = _st(tiny_gemma_dir)
    ref = st.encode_query(MIXED)[:, :16]
    with PromptEmbedder(model=tiny_gemma_dir, device="cpu", truncate_dim=16, normalize=False) as emb:
        np.testing.assert_allclose(emb.embed_queries(MIXED), ref, atol=ATOL)
    with PromptEmbedder(model=tiny_gemma_dir, device="cpu", truncate_dim=16) as emb:
        got = emb.embed_queries(MIXED)
    np.testing.assert_allclose(got, ref / np.linalg.norm(ref, axis=1, keepdims=True), atol=ATOL)


def test_truncation_count_comes_from_the_engine(tiny_bert_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    texts = ["hello world " * n for n in range(0, 40, 3)] + ["word " * 100, "short"]
    st = _st(tiny_bert_dir)
    # reference: tokenize without truncation and count the rows over the limit (today's path's own counter)
    expected = engine.count_over_limit(st, texts)
    assert 0 < expected < len(texts)
    with PromptEmbedder(model=tiny_bert_dir, device="cpu") as emb, caplog.at_level("WARNING", "promptembed"):
        emb.embed(texts)
    assert f"{expected} of {len(texts)} texts are longer than the model's max_seq_length (32 tokens" in caplog.text


def test_the_truncation_count_sees_characters_that_are_several_tokens(tiny_bert_dir: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())  # byte-level BPE, as RoBERTa's: an emoji the BPE never saw is 4 byte tokens
    tok.pre_tokenizer, tok.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(["hello world planet"] * 10, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tok.save(str(tiny_bert_dir / "tokenizer.json"))
    texts = ["\U0001f600" * 10, "hello"]  # 10 characters but 42 tokens, over the 32; and a short one
    assert len(tok.encode(texts[0]).ids) == 42
    assert engine.count_over_limit(_st(tiny_bert_dir), texts) == 1  # the count read characters as tokens: 0


def test_error_in_tokenizer_thread_reaches_the_caller_and_the_thread_ends(
    minilm_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = [f"text number {i}" for i in range(_run.INLINE_TEXTS + 50)]
    real = _features.build_features
    count = [0]

    def failing(*args: object, **kwargs: object) -> object:
        count[0] += 1
        if count[0] == 2:
            raise RuntimeError("tokenizer thread failed")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_features, "build_features", failing)
    with PromptEmbedder(model=minilm_dir, device="cpu", max_batch_tokens=64) as emb:
        with pytest.raises(RuntimeError, match="tokenizer thread failed"):
            emb.embed_documents(texts)
        assert not any(t.name == "promptembed-tokenizer" for t in threading.enumerate())
        monkeypatch.setattr(_features, "build_features", real)
        assert emb.embed_documents(texts[:3]).shape == (3, 384)  # the lock was released


# ------------------------------------------------------------------------------------ tokenizer threads
def _corpus(n: int) -> list[str]:
    """``n`` texts of every length in MIXED (some over the tiny models' limits), each made distinct."""
    return [f"{i}: {MIXED[i % len(MIXED)]}" for i in range(n)]


def _count_calls(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """Wrap ``_features.<name>(tokenizer, part)``; the returned list gets each call's slice length."""
    calls: list[int] = []
    real = getattr(_features, name)

    def counting(tokenizer: object, part: list[str]) -> _features.Tokenized:
        calls.append(len(part))
        return real(tokenizer, part)

    monkeypatch.setattr(_features, name, counting)
    return calls


@pytest.mark.parametrize("threads", [2, 3, 20])
def test_tokenize_in_threads_equals_one_call(tiny_gemma_dir: Path, tiny_bert_dir: Path, threads: int) -> None:
    texts = _corpus(3 * _features.MIN_TEXTS_PER_THREAD + 7)
    for folder in (tiny_gemma_dir, tiny_bert_dir):
        model = _st(folder)
        one = _features.tokenize(model, texts)
        many = _features.tokenize(model, texts, threads=threads)
        assert one.truncated > 0  # the truncation count is summed over the threads' slices
        assert (many.rows, many.lengths, many.truncated) == (one.rows, one.lengths, one.truncated)


def test_tokenizer_threads_share_the_tokenizer_and_copy_only_when_it_is_busy(
    tiny_gemma_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No copy of the tokenizer in the common case (a copy of a large vocabulary takes seconds per thread); a thread
    that meets "Already borrowed" (another caller changing the tokenizer) tokenizes its slice again on a copy."""
    model = _st(tiny_gemma_dir)
    texts = _corpus(4 * _features.MIN_TEXTS_PER_THREAD)
    one = _features.tokenize(model, texts)
    copies = _count_calls(monkeypatch, "_encode_with_copy")
    many = _features.tokenize(model, texts, threads=4)
    assert copies == [] and (many.rows, many.lengths) == (one.rows, one.lengths)

    real_encode = _features._encode
    failed: list[int] = []

    def busy_once(tokenizer: object, part: list[str]) -> _features.Tokenized:
        if len(part) > 1 and not failed and threading.current_thread().name.startswith("promptembed-tokenize"):
            failed.append(len(part))
            raise RuntimeError("Already borrowed")
        return real_encode(tokenizer, part)

    monkeypatch.setattr(_features, "_encode", busy_once)
    again = _features.tokenize(model, texts, threads=4)
    assert len(failed) == 1 and copies == failed  # that slice, and only it, went to a copy
    assert (again.rows, again.lengths, again.truncated) == (one.rows, one.lengths, one.truncated)

    def broken(tokenizer: object, part: list[str]) -> _features.Tokenized:
        raise RuntimeError("something else")

    monkeypatch.setattr(_features, "_encode", broken)
    with pytest.raises(RuntimeError, match="something else"):  # other errors are not retried
        _features.tokenize(model, texts, threads=4)


def test_engine_with_tokenizer_threads_matches_reference_in_input_order(
    minilm_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(engine.TOKENIZER_THREADS_ENV, "3")
    assert engine.default_tokenizer_threads("cpu") == 3
    texts = _corpus(2 * _features.MIN_TEXTS_PER_THREAD + 100)
    calls = _count_calls(monkeypatch, "_encode_shared")
    with PromptEmbedder(model=minilm_dir, device="cpu", max_batch_tokens=4096) as emb:
        got = emb.embed_documents(texts)
    assert len(calls) >= 2  # the first window was tokenized in slices by several threads
    np.testing.assert_allclose(got, _st(minilm_dir).encode_document(texts, normalize_embeddings=True), atol=ATOL)


def test_tokenizer_threads_default_and_bad_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(engine.TOKENIZER_THREADS_ENV, raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert engine.default_tokenizer_threads("cpu") == 1  # the forward pass needs the cores
    assert engine.default_tokenizer_threads("cuda:0") == _features.MAX_TOKENIZER_THREADS
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert engine.default_tokenizer_threads("cuda") == 1
    for bad in ("0", "-1", "many"):
        monkeypatch.setenv(engine.TOKENIZER_THREADS_ENV, bad)
        with pytest.raises(ConfigError, match=f"PROMPTEMBED_TOKENIZER_THREADS={bad!r} is not a positive whole"):
            engine.default_tokenizer_threads("cuda")


def test_forked_child_gets_its_own_tokenizer_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    parent = _features._pool()
    assert _features._pool() is parent
    monkeypatch.setattr(_features.os, "getpid", lambda: -1)  # as in a child forked after the pool started
    child = _features._pool()
    assert child is not parent and child.submit(lambda: 42).result(timeout=10) == 42
    child.shutdown(wait=True)


def test_forked_child_never_inherits_a_held_tokenizer_lock() -> None:
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    with _features._spares_lock:  # held by this thread at the moment of the fork
        child = ctx.Process(target=_features._pool)  # the child takes the lock to make its own pool
        child.start()
    child.join(timeout=60)
    assert child.exitcode == 0  # it did not wait forever on the parent's lock


def test_engine_options_are_validated(minilm_dir: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape("Unknown engine 'fast'; use 'auto'")):
        PromptEmbedder(model=minilm_dir, device="cpu", engine="fast")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=re.escape("max_batch_tokens must be an int >= 1, got 0")):
        PromptEmbedder(model=minilm_dir, device="cpu", max_batch_tokens=0)
    with PromptEmbedder(model=minilm_dir, device="cpu") as emb:
        assert emb.max_batch_tokens == engine.default_max_batch_tokens("cpu")
        assert emb.config()["engine"] == "auto" and emb.config()["max_batch_tokens"] is None


@pytest.mark.gpu
def test_bf16_on_gpu_close_to_float32_eager_and_compiled(tiny_gemma_dir: Path, tiny_bert_dir: Path) -> None:
    """bf16 on CUDA, eager and with ``engine="compile"`` (the compiled model is used): min cosine >= 0.999 to float32
    and between the two. Tiny local models (the bundled MiniLM cannot travel to the lent GPU machine;
    benchmarks/gpu.py checks the full-size shapes)."""
    texts = MIXED * 20
    for path in (tiny_bert_dir, tiny_gemma_dir):
        with PromptEmbedder(model=path, device="cuda", dtype="float32") as f32:
            ref = f32.embed_documents(texts)
        with PromptEmbedder(model=path, device="cuda", dtype="bfloat16") as eager:
            plain = eager.embed_documents(texts)
        with PromptEmbedder(model=path, device="cuda", dtype="bfloat16", engine="compile") as compiled:
            got = compiled.embed_documents(texts)
            assert compiled._require().compiled is not None
            one = compiled.embed_queries(texts[:1])  # a one-text call: the eager model, no one-row graph
        assert float((ref * plain).sum(axis=1).min()) >= 0.999
        assert float((ref * got).sum(axis=1).min()) >= 0.999
        assert float((plain * got).sum(axis=1).min()) >= 0.999
        assert one.shape == (1, got.shape[1])


def test_a_compile_that_fails_is_a_config_error_naming_the_fix(
    tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch.compile compiles at the first call; a machine that cannot (no C++ compiler, no Triton) gets one line
    that names engine='auto', not an Inductor traceback."""
    import torch

    def cannot_compile(model, **kwargs):  # type: ignore[no-untyped-def]
        def forward(features, **kw):  # type: ignore[no-untyped-def]
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found\nlong traceback ...")

        return forward

    monkeypatch.setattr(torch, "compile", cannot_compile)
    with PromptEmbedder(model=tiny_bert_dir, device="cpu", engine="compile") as emb:
        with pytest.raises(
            ConfigError,
            match=re.escape(
                "engine='compile': torch.compile could not compile this model on cpu (RuntimeError: InvalidCxxCompiler:"
                " No working C++ compiler found); use engine='auto' (the same engine, uncompiled)"
            ),
        ):
            emb.embed_documents(MIXED)
        assert emb.embed_queries(MIXED[:1]).shape[0] == 1  # a one-text call runs the eager model


def test_a_model_bug_under_compile_is_the_models_own_error() -> None:
    """A first compiled call that fails because of the model or its input (here a shape bug) fails the eager model
    too: that error is raised, not "could not compile ... use engine='auto'", which would not help."""
    import torch

    class Broken(torch.nn.Module):
        device = torch.device("cpu")

        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(4, 3)

        def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return {"sentence_embedding": self.linear(features["x"])}

    compiled = engine._compile(Broken())
    with pytest.raises(RuntimeError, match="mat1 and mat2 shapes cannot be multiplied"):
        compiled({"x": torch.ones(2, 5)})
    assert compiled({"x": torch.ones(2, 4)})["sentence_embedding"].shape == (2, 3)  # and the real compile works
