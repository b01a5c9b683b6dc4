"""`make demo`: semantic search with the bundled default model, prompts applied automatically."""

from __future__ import annotations

from promptembed import PromptEmbedder

QUERY = "Which planet is known as the Red Planet?"
DOCUMENTS = [
    "Venus is often called Earth's twin because of its similar size and proximity.",
    "Mars, known for its reddish appearance, is often referred to as the Red Planet.",
    "Jupiter, the largest planet in our solar system, has a prominent red spot.",
    "Saturn, famous for its rings, is sometimes mistaken for the Red Planet.",
]


def main() -> None:
    with PromptEmbedder() as emb:
        print(f"model: {emb.model_source}\ndevice: {emb.device}  precision: {emb.precision}  dim: {emb.dimension}")
        print(f"query prompt: {emb.query_prompt!r}  document prompt: {emb.document_prompt!r}\n")
        scores = (emb.embed_queries([QUERY]) @ emb.embed_documents(DOCUMENTS).T)[0]
    print(f"query: {QUERY}")
    for rank, i in enumerate(scores.argsort()[::-1], start=1):
        print(f"  {rank}. {scores[i]:.3f}  {DOCUMENTS[i]}")


if __name__ == "__main__":
    main()
