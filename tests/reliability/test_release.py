"""close() and context managers release the shared model; nothing leaks threads or processes."""

from __future__ import annotations

import gc
import multiprocessing
import threading
import weakref
from pathlib import Path

import pytest
from haystack_integrations.components.embedders.promptembed import PromptTextEmbedder
from langchain_promptembed import PromptEmbeddings
from llama_index.embeddings.promptembed import PromptEmbedding

from promptembed import PromptEmbedder, PromptEmbedError, _registry


def _held(path: Path) -> int:
    return len([k for k in _registry.loaded_keys() if k.source == str(path.resolve())])


def test_close_frees_the_weights_and_blocks_use(tiny_bert_dir: Path) -> None:
    threads, children = set(threading.enumerate()), multiprocessing.active_children()
    emb = PromptEmbedder(model=tiny_bert_dir)
    ref = weakref.ref(emb._require().model)
    emb.embed_queries(["x"])
    emb.close()
    emb.close()  # idempotent
    gc.collect()
    assert ref() is None and _held(tiny_bert_dir) == 0
    with pytest.raises(PromptEmbedError, match="This PromptEmbedder is closed"):
        emb.embed_queries(["x"])
    assert set(threading.enumerate()) <= threads | {t for t in threading.enumerate() if t.daemon}
    assert multiprocessing.active_children() == children


def test_context_managers_and_adapters_release(tiny_bert_dir: Path) -> None:
    with PromptEmbedder(model=tiny_bert_dir) as emb:
        assert _held(tiny_bert_dir) == 1
        emb.embed_documents(["x"])
    assert _held(tiny_bert_dir) == 0
    with PromptEmbeddings(model=str(tiny_bert_dir)):
        assert _held(tiny_bert_dir) == 1
    assert _held(tiny_bert_dir) == 0
    li = PromptEmbedding(model=str(tiny_bert_dir))
    hs = PromptTextEmbedder(model=str(tiny_bert_dir))
    hs.warm_up()
    assert _held(tiny_bert_dir) == 1
    li.close()
    assert _held(tiny_bert_dir) == 1  # still used by the Haystack component
    hs.close()
    assert _held(tiny_bert_dir) == 0


def test_trust_remote_code_off_everywhere(tiny_bert_dir: Path) -> None:
    objs = [PromptEmbeddings(model=str(tiny_bert_dir)), PromptEmbedding(model=str(tiny_bert_dir))]
    hs = PromptTextEmbedder(model=str(tiny_bert_dir))
    hs.warm_up()
    try:
        assert all(k.trust_remote_code is False for k in _registry.loaded_keys())
        # LangChain's field is unset (None: False unless model_kwargs says otherwise); the loaded keys above are False
        assert objs[0].trust_remote_code is None and objs[1].trust_remote_code is False
        assert hs.to_dict()["init_parameters"]["trust_remote_code"] is False
    finally:
        for o in objs:
            o.close()
        hs.close()
