"""embed_stream: lazy, chunked, same vectors as one big call, errors give the position in the whole stream."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from promptembed import InputError, PromptEmbedder


def test_stream_is_lazy_and_matches_one_call(tiny_gemma_dir: Path) -> None:
    consumed = 0

    def source() -> Iterator[str]:
        nonlocal consumed
        for i in range(250):
            consumed += 1
            yield f"text number {i} about roofs"

    with PromptEmbedder(model=tiny_gemma_dir) as emb:
        stream = emb.embed_stream(source(), chunk_size=100, progress=False)
        first = next(stream)
        assert first.shape == (100, 32) and consumed == 100  # nothing read beyond the first chunk
        rest = list(stream)
        assert [a.shape[0] for a in rest] == [100, 50] and consumed == 250
        all_texts = [f"text number {i} about roofs" for i in range(250)]
        np.testing.assert_allclose(np.vstack([first, *rest]), emb.embed_documents(all_texts), atol=2e-6)
        queries = np.vstack(list(emb.embed_stream(all_texts[:30], role="query", chunk_size=7, progress=False)))
        np.testing.assert_allclose(queries, emb.embed_queries(all_texts[:30]), atol=2e-6)
        sts = np.vstack(list(emb.embed_stream(all_texts[:5], role=None, prompt_name="STS", progress=False)))
        np.testing.assert_allclose(sts, emb.embed(all_texts[:5], prompt_name="STS"), atol=2e-6)
        assert list(emb.embed_stream(iter([]), progress=False)) == []


def test_stream_errors_name_the_global_position(tiny_gemma_dir: Path) -> None:
    texts = [*(f"t{i}" for i in range(12)), None]
    with PromptEmbedder(model=tiny_gemma_dir) as emb:
        stream = emb.embed_stream(texts, chunk_size=5, progress=False)  # type: ignore[arg-type]
        assert next(stream).shape == (5, 32)
        assert next(stream).shape == (5, 32)
        last_good = next(stream)  # t10 and t11 were read from the source with the bad item: embedded, not lost
        np.testing.assert_allclose(last_good, emb.embed_documents(["t10", "t11"]), atol=2e-6)
        with pytest.raises(InputError, match=re.escape("texts[12] is NoneType, not str")):
            next(stream)


def test_stream_bad_options_fail_at_the_call(tiny_bert_dir: Path) -> None:
    from promptembed import ConfigError, PromptError

    with PromptEmbedder(model=tiny_bert_dir) as emb:
        with pytest.raises(ConfigError, match=re.escape("chunk_size must be an int >= 1, got 0")):
            emb.embed_stream(["a"], chunk_size=0)
        with pytest.raises(PromptError, match="not both"):
            emb.embed_stream(["a"], role="query", prompt_name="STS")
        for role in ("queries", "Query", "doc"):  # each used to give the vectors of no prompt at all
            with pytest.raises(
                ConfigError,
                match=re.escape(f"role must be 'query', 'document' or None (with prompt_name=), got {role!r}"),
            ):
                emb.embed_stream(["a"], role=role)  # type: ignore[arg-type]
        with pytest.raises(InputError, match="got a single str; wrap it in a list"):
            emb.embed_stream("Mars")  # it embedded "M", "a", "r", "s"
        with pytest.raises(InputError, match="texts must be a list of str, got dict"):
            emb.embed_stream({"Mars": 1})  # type: ignore[arg-type]
        with pytest.raises(PromptError, match="nope"):
            emb.embed_stream(["a"], role=None, prompt_name="nope")  # at the call, not at the first chunk
        with pytest.raises(InputError, match="texts must be an iterable of str, got NoneType"):
            emb.embed_stream(None)  # type: ignore[arg-type]  # was a bare TypeError
        with pytest.raises(InputError, match="texts must be an iterable of str, got int"):
            emb.embed_stream(5)  # type: ignore[arg-type]


def test_a_source_that_fails_midway_gives_what_it_read_first(tiny_bert_dir: Path) -> None:
    def cursor() -> Iterator[str]:
        yield from ("a", "b", "c")
        raise OSError("connection lost")

    with PromptEmbedder(model=tiny_bert_dir) as emb:
        stream = emb.embed_stream(cursor(), chunk_size=10, progress=False)
        got = next(stream)  # the three texts read before the failure: embedded, not lost with the chunk
        np.testing.assert_allclose(got, emb.embed_documents(["a", "b", "c"]), atol=2e-6)
        with pytest.raises(OSError, match="connection lost"):
            next(stream)


def test_the_stream_shows_one_bar_and_its_chunks_none(tiny_bert_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    texts = [f"t{i}" for i in range(1100)]  # a chunk of 1024: the size at which a plain call shows its own bar
    with PromptEmbedder(model=tiny_bert_dir) as emb:
        capsys.readouterr()
        assert sum(len(a) for a in emb.embed_stream(texts, progress=False)) == 1100
        assert "Embedding" not in capsys.readouterr().err  # progress=False: no bar at all
        list(emb.embed_stream(texts, progress=True))
        err = capsys.readouterr().err
        assert "embedding: 1100text" in err and "Embedding" not in err  # the stream's bar only
        emb.embed_documents(texts)
        assert "Embedding: 100%" in capsys.readouterr().err  # a plain call of 1,000 texts still shows its own
