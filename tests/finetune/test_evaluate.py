"""evaluate_retrieval: the before/after scores of the finetune helper and of `promptembed eval`."""

from __future__ import annotations

from pathlib import Path

import pytest
from sentence_transformers import SentenceTransformer

from promptembed.finetune.evaluate import evaluate_retrieval

QUERIES = {"q1": "red planet", "q2": "ringed planet", "q3": "hot planet"}
CORPUS = {"d1": "Mars is the red planet", "d2": "Saturn has rings", "d3": "Venus is hot", "d4": "Jupiter is big"}
RELEVANT = {"q1": {"d1"}, "q2": {"d2"}, "q3": {"d3"}}


@pytest.mark.parametrize("similarity", ["dot", "euclidean", "manhattan"])
def test_a_model_that_scores_by_another_similarity_is_scored_by_cosine(tiny_bert_dir: Path, similarity: str) -> None:
    cosine = evaluate_retrieval(SentenceTransformer(str(tiny_bert_dir), device="cpu"), QUERIES, CORPUS, RELEVANT)
    model = SentenceTransformer(str(tiny_bert_dir), device="cpu")
    model.similarity_fn_name = similarity  # as config_sentence_transformers.json's similarity_fn_name sets it
    other = evaluate_retrieval(model, QUERIES, CORPUS, RELEVANT)  # a KeyError: 'eval_cosine_ndcg@10'
    assert other == cosine  # the vectors promptembed serves are unit length: their dot product is the cosine
