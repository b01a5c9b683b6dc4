"""Quick probes of finetune levers on real questions: training variants and ways to use a teacher (issue #16).

    python benchmarks/finetune_probes.py --variant mnrl                # the library's loss, no teacher: the reference
    python benchmarks/finetune_probes.py --variant symmetric-mnrl      # MNRL both ways (query->passage, passage->query)
    python benchmarks/finetune_probes.py --variant mnrl-scale30        # MNRL at scale 30 instead of 20
    python benchmarks/finetune_probes.py --variant frozen-embeddings   # the word embeddings are not trained
    python benchmarks/finetune_probes.py --variant learned-prompts     # train with "query: "/"passage: " prompts
    python benchmarks/finetune_probes.py --variant one-pair-per-chunk-per-batch
    python benchmarks/finetune_probes.py --variant inbatch-kl          # + KL to the teacher's in-batch scores
    python benchmarks/finetune_probes.py --variant filter              # keep pairs the teacher agrees with
    python benchmarks/finetune_probes.py --variant relabel             # positive := the teacher's top chunk
    python benchmarks/finetune_probes.py --variant listwise-kl         # + KL over the teacher's top 8 chunks
    python benchmarks/finetune_probes.py --variant relabel --strategies sentence,keyphrase,question,ask --per 5
    python benchmarks/finetune_probes.py --domain debian --scale 30 --epochs 2 --chunk-fraction 0.5  # half the chunks
    python benchmarks/finetune_probes.py --scale 30 --epochs 2 --heldout-fraction 0      # train on every chunk
    python benchmarks/finetune_probes.py --scale 30 --epochs 2 --ict-keep 0.1            # ORQA: keep the sentence in
    python benchmarks/finetune_probes.py --scale 30 --epochs 2 --crop-sentences 5,10     # shorter inverse-cloze queries
    python benchmarks/finetune_probes.py --scale 30 --epochs 4 --eval-each-epoch         # checkpoint choice
    python benchmarks/finetune_probes.py --scale 30 --epochs 2 --tsdae-epochs 1          # TSDAE first (GPL's stage 1)
    python benchmarks/finetune_probes.py --variant embed-distill-mnrl --scale 30 --epochs 2  # + the teacher's vectors
    python benchmarks/finetune_probes.py --variant embed-distill-mnrl --scale 30 --epochs 2 \
        --distill-strategies sentence,keyphrase,question,ask,phrase     # the teacher's vectors of question-like texts
    python benchmarks/finetune_probes.py --scale 30 --epochs 2 --lead-sentence           # each chunk's first sentence
    python benchmarks/finetune_probes.py --scale 30 --epochs 2 --soup 3                  # average 3 students' weights
    python benchmarks/finetune_probes.py --scale 30 --epochs 2 --epoch-average          # + the epochs' ends averaged

With a held-out split, each result also scores the real questions by where their gold passage went (held out or
trained on), before and after.

A probe, not the library path (one epoch, quick enough to try many things; the levers that pay off go into
``finetune()`` and ``finetune_bench.py``): it rebuilds the exact pairs ``finetune()`` makes for the domain and
seed (same chunker, budget, held-out split and generator), embeds every query and chunk once with the teacher
(EmbeddingGemma-300M in bf16, its own prompts; cached in ``~/.cache/promptembed-bench/teacher-*.npz``), trains
all-MiniLM-L6-v2 for one epoch with sentence-transformers' trainer (bf16 on a CPU with AMX, batch 32, lr 2e-5,
no-duplicates batches) and scores the domain's real questions (debian: against the benchmark's corpus, the
manual's chunks as distractors). Each result is appended to
``benchmarks/finetune_probes.jsonl``. What the less obvious variants do (the two KL losses are small modules on the
student's cosine similarities at temperature 0.05, MNRL's scale of 20):

- ``one-pair-per-chunk-per-batch``: no two pairs of one chunk in a batch, so an inverse-cloze query never meets,
  as an in-batch negative, another pair's passage that contains it (a batch sampler built on sentence-transformers'
  ``DefaultBatchSampler``);
- ``learned-prompts``: the student gets ``"query: "``/``"passage: "`` prompts, trained and evaluated with them (as
  ``finetune()`` maps a model's prompts to the columns);
- ``inbatch-kl``: MNRL + KL(student || teacher) over each query's in-batch passages, the teacher's matrix rebuilt
  from its cached embeddings (passed as the row's label);
- ``listwise-kl``: MNRL + KL over [positive, the teacher's 8 highest-scoring other chunks] (no margin filter:
  soft labels carry false negatives);
- ``embed-distill``: embedding distillation (EmbedDistill; sentence-transformers' ``EmbedDistillLoss``, cosine
  distance): a linear layer maps the student into the teacher's 768 dimensions and stays in the model, starting as
  the ridge-regression fit of the base student's vectors of the pairs' texts to the teacher's; the student learns
  to give the teacher's query vector for each pseudo-query and its document vector for each positive;
- ``embed-distill-mnrl``: the same and MNRL on the pairs (scale 30 unless ``--scale``), as two datasets of the
  trainer (each epoch goes through both, so twice the steps of ``mnrl``); ``--distill-weight`` scales the
  distillation loss.

The ``gold_*_base`` fields score the base model; when TSDAE, the projection or learned prompts change the model
before training, ``gold_*_start`` score the model training starts from.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
OUT = HERE / "finetune_probes.jsonl"
GEMMA = Path.home() / ".cache" / "promptembed-models" / "embeddinggemma-300m"
DOCUMENTS_ONLY = (
    "mnrl", "symmetric-mnrl", "mnrl-scale30", "frozen-embeddings", "learned-prompts", "one-pair-per-chunk-per-batch",
)  # fmt: skip
TEACHER = ("inbatch-kl", "filter", "relabel", "listwise-kl", "embed-distill", "embed-distill-mnrl")
VARIANTS = DOCUMENTS_ONLY + TEACHER


def main() -> None:
    import numpy as np
    import torch
    import torch.nn.functional as F
    from datasets import Dataset
    from finetune_domains import DOMAINS, training_chunks
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers import SentenceTransformerTrainingArguments as Args
    from sentence_transformers.base.sampler import BatchSamplers, DefaultBatchSampler
    from sentence_transformers.sentence_transformer import losses
    from sentence_transformers.util import cos_sim, pairwise_cos_sim

    from promptembed import _loading
    from promptembed.finetune._steps import split_chunks
    from promptembed.finetune.evaluate import evaluate_retrieval
    from promptembed.finetune.pairs import generate_pairs
    from promptembed.finetune.teacher import Teacher

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--domain", default="zaragoza", choices=sorted(DOMAINS))
    ap.add_argument("--variant", default="mnrl", choices=VARIANTS)
    ap.add_argument("--strategies", default="sentence,keyphrase")
    ap.add_argument("--per", type=int, default=3, help="pairs per chunk (max_pairs_per_chunk)")
    ap.add_argument("--teacher-temperature", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scale", type=float, default=0.0, help="MNRL scale (default: 20, or 30 for mnrl-scale30)")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--scheduler", default="linear", help="the trainer's lr_scheduler_type (linear, cosine, ...)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--chunk-fraction", type=float, default=1.0,
        help="keep this seeded fraction of the domain's chunks (a smaller corpus of the same domain)",
    )  # fmt: skip
    ap.add_argument(
        "--heldout-fraction", type=float, default=0.1,
        help="chunks held out of training, as finetune()'s heldout_fraction (0: train on every chunk)",
    )  # fmt: skip
    ap.add_argument(
        "--crop-sentences", default="",
        help="MIN,MAX: cut each inverse-cloze query longer than MAX words to a seeded contiguous window of MIN to "
        "MAX words (shorter queries, closer to users' question length)",
    )  # fmt: skip
    ap.add_argument(
        "--ict-keep", type=float, default=0.0,
        help="share of inverse-cloze pairs whose positive is the whole chunk, the query sentence left in (ORQA: 0.1)",
    )  # fmt: skip
    ap.add_argument(
        "--eval-each-epoch", action="store_true",
        help="score the real questions and finetune()'s held-out pseudo-queries after every epoch (does choosing "
        "the epoch on the held-out estimate pick the best one for the real questions?)",
    )  # fmt: skip
    ap.add_argument(
        "--tsdae-epochs", type=float, default=0.0,
        help="first adapt the model to the domain without labels: TSDAE (Wang et al. 2021, GPL's first stage) on "
        "the training chunks' sentences for this many epochs, then train on the pairs",
    )  # fmt: skip
    ap.add_argument("--tsdae-lr", type=float, default=3e-5)
    ap.add_argument(
        "--distill-weight", type=float, default=1.0,
        help="embed-distill variants: weight of the cosine distance to the teacher's embedding (MNRL's is 1)",
    )  # fmt: skip
    ap.add_argument(
        "--distill-strategies", default="",
        help="embed-distill-mnrl: the distillation rows come from pairs of these strategies (the teacher labels "
        "every text, so noisy question templates can teach the student the teacher's question vectors), while MNRL "
        "keeps --strategies' pairs",
    )  # fmt: skip
    ap.add_argument("--distill-per", type=int, default=5, help="pairs per chunk for --distill-strategies")
    regularizers: dict[str, dict[str, Any]] = {  # two ways to keep the lower layers near the base model
        "--freeze-embeddings": {"action": "store_true", "help": "keep the transformer's input embeddings (word, "
                                "position, token type) at the base model's weights"},
        "--llrd": {"type": float, "default": 1.0, "help": "layer-wise learning-rate decay: the top layer trains at "
                   "--lr, each layer below at this factor times the one above, the embeddings last (1: one rate)"},
    }  # fmt: skip
    for flag, options in regularizers.items():
        ap.add_argument(flag, **options)
    ap.add_argument(
        "--soup", type=int, default=1,
        help="model soup: train this many students on the same pairs (training seeds seed, seed+1000, ...) and "
        "average their weights (Wortsman et al., 2022); each member is scored too",
    )  # fmt: skip
    ap.add_argument(
        "--epoch-average", action="store_true",
        help="also score the average of the weights at the end of every epoch (no extra training)",
    )  # fmt: skip
    ap.add_argument(
        "--lead-sentence", action="store_true",
        help="inverse-cloze pairs take each chunk's first sentence first (then the others in seeded order)",
    )  # fmt: skip
    a = ap.parse_args()
    if a.soup > 1 and (a.llrd != 1.0 or a.eval_each_epoch or a.epoch_average or a.variant != "mnrl"):
        ap.error("--soup trains its extra members as plain MNRL: not with --llrd, --eval-each-epoch, --epoch-average "
                 "or another --variant")  # fmt: skip
    torch.set_num_threads(a.threads)
    if a.lead_sentence:
        import promptembed.finetune.pairs as pairs_module

        pairs_module._LEAD_FIRST = True

    domain = DOMAINS[a.domain]()
    queries, corpus, relevant = domain.queries, domain.corpus, domain.relevant
    if domain.distractor_docs:  # debian: the benchmark's own test set, the manual's chunks as distractors
        import tempfile

        from finetune_bench import _prepare

        from promptembed.finetune.api import load_eval_queries

        with tempfile.TemporaryDirectory(prefix="probe-") as tmp:
            _, questions, distractors = _prepare(a.domain, Path(tmp))
            queries, corpus, relevant = load_eval_queries(questions, distractors)
    model = SentenceTransformer(str(_loading.default_model_path()), device="cpu")
    chunks = training_chunks(domain.docs, model.tokenizer)  # as finetune()
    if a.chunk_fraction < 1.0:
        keep = set(random.Random(1000 + a.seed).sample(range(len(chunks)), round(len(chunks) * a.chunk_fraction)))
        chunks = [c for i, c in enumerate(chunks) if i in keep]
    train, held = split_chunks(chunks, a.heldout_fraction, a.seed)
    pairs = generate_pairs(
        train, strategies=a.strategies.split(","), max_per_chunk=a.per, corpus=chunks, seed=a.seed, progress=False
    ).pairs
    if a.ict_keep:
        keep_rng = random.Random(3000 + a.seed)
        text_of = {c.id: c.text for c in train}
        for i, p in enumerate(pairs):
            if p.source == "sentence" and keep_rng.random() < a.ict_keep:
                pairs[i] = dataclasses.replace(p, positive=text_of[p.chunk_id])
    if a.crop_sentences:
        lo, hi = (int(x) for x in a.crop_sentences.split(","))
        crop_rng = random.Random(2000 + a.seed)
        for i, p in enumerate(pairs):
            words = p.query.split()
            if p.source == "sentence" and len(words) > hi:
                n = crop_rng.randint(lo, hi)
                start = crop_rng.randrange(len(words) - n + 1)
                pairs[i] = dataclasses.replace(p, query=" ".join(words[start : start + n]))

    distill_pairs = pairs
    if a.distill_strategies:
        distill_pairs = generate_pairs(
            train, strategies=a.distill_strategies.split(","), max_per_chunk=a.distill_per, corpus=chunks,
            seed=a.seed, progress=False,
        ).pairs  # fmt: skip

    teacher_on = a.variant in TEACHER
    cache = Path.home() / ".cache" / "promptembed-bench" / f"teacher-{a.domain}.npz"
    vec: dict[str, np.ndarray] = {}
    if cache.is_file():
        z = np.load(cache, allow_pickle=True)
        vec = dict(zip(z["keys"].tolist(), z["vecs"], strict=True))
    need_q = sorted({"Q\0" + p.query for p in pairs + distill_pairs} - set(vec))
    need_d = sorted(
        {"D\0" + t for t in [c.text for c in train] + [p.positive for p in pairs + distill_pairs]} - set(vec)
    )
    started = time.time()
    if teacher_on and (need_q or need_d):
        gemma = SentenceTransformer(str(GEMMA), device="cpu", model_kwargs={"torch_dtype": torch.bfloat16})
        teacher = Teacher(gemma, "bi-encoder", GEMMA.name)  # finetune()'s teacher: its own prompts, unit-norm
        for keys, role, bs in ((need_q, "query", 32), (need_d, "document", 16)):
            if keys:
                out = teacher.embed([k[2:] for k in keys], role, batch_size=bs, progress=True)  # type: ignore[arg-type]
                vec.update({k: np.asarray(v, dtype=np.float32) for k, v in zip(keys, out, strict=True)})
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, keys=np.array(list(vec), dtype=object), vecs=np.stack(list(vec.values())))
    teacher_s = time.time() - started

    index = {c.id: i for i, c in enumerate(train)}
    source = np.array([index[p.chunk_id] for p in pairs])
    kinds = sorted({p.source for p in pairs})

    def agreement(found: np.ndarray) -> dict[str, float]:
        """Share of pairs whose own chunk ranks first among the training chunks: overall and per strategy."""
        hits = found == source
        out = {"all": round(float(hits.mean()), 4)}
        out.update({k: round(float(hits[[p.source == k for p in pairs]].mean()), 4) for k in kinds})
        return out

    from promptembed.finetune.evaluate import embed_texts

    student_top = (
        embed_texts(model, [p.query for p in pairs], "query")
        @ embed_texts(model, [c.text for c in train], "document").T
    ).argmax(1)
    student_agree = agreement(student_top.cpu().numpy())
    agree: dict[str, float] | None = None  # the same for the teacher (known once it has run)
    if not (need_q or need_d):
        chunk_t = np.stack([vec["D\0" + c.text] for c in train])
        query_t = np.stack([vec["Q\0" + p.query] for p in pairs])
        scores = query_t @ chunk_t.T
        top = scores.argmax(1)
        agree = agreement(top)
    rows: list[dict[str, object]] = []
    kept_pairs = []
    for i, p in enumerate(pairs):
        if a.variant == "filter" and top[i] != source[i]:
            continue
        positive = train[top[i]].text if a.variant == "relabel" and top[i] != source[i] else p.positive
        row: dict[str, object] = {"anchor": p.query, "positive": positive}
        if a.variant == "inbatch-kl":
            row["label"] = np.concatenate([vec["Q\0" + p.query], vec["D\0" + positive]]).tolist()
        elif a.variant == "listwise-kl":
            others = [j for j in np.argsort(-scores[i]) if j != source[i]][:8]
            row.update({f"negative_{k + 1}": train[j].text for k, j in enumerate(others)})
            row["label"] = [float(query_t[i] @ vec["D\0" + p.positive])] + [float(scores[i, j]) for j in others]
        elif a.variant.startswith("embed-distill"):
            row["label"] = np.stack([vec["Q\0" + p.query], vec["D\0" + positive]]).tolist()
        rows.append(row)
        kept_pairs.append(p)

    tt = a.teacher_temperature

    class Distill(torch.nn.Module):
        """MNRL plus KL(student || teacher) over in-batch passages or over each row's listed candidates."""

        def __init__(self, student: SentenceTransformer) -> None:
            super().__init__()
            self.model = student

        def forward(self, features: list[dict[str, torch.Tensor]], labels: torch.Tensor) -> torch.Tensor:
            emb = [self.model(f)["sentence_embedding"] for f in features]
            q, p = emb[0], emb[1]
            sim = cos_sim(q, p) / 0.05
            loss = F.cross_entropy(sim, torch.arange(len(q), device=q.device))
            if a.variant == "inbatch-kl":
                d = labels.shape[1] // 2
                student, teacher = sim, labels[:, :d].float() @ labels[:, d:].float().T
            else:
                student = torch.stack([pairwise_cos_sim(q, x) for x in emb[1:]], 1) / 0.05
                teacher = labels.float()
            kl = F.kl_div(F.log_softmax(student, 1), F.log_softmax(teacher / tt, 1), log_target=True,
                          reduction="batchmean")  # fmt: skip
            return loss + kl

    class Weighted(torch.nn.Module):
        """A loss times a constant (the distillation loss's weight beside MNRL)."""

        def __init__(self, inner: torch.nn.Module, weight: float) -> None:
            super().__init__()
            self.inner, self.weight, self.model = inner, weight, inner.model

        def forward(self, features: list[dict[str, torch.Tensor]], labels: torch.Tensor) -> torch.Tensor:
            return self.weight * self.inner(features, labels)

    class OnePairPerChunk(DefaultBatchSampler):
        """Shuffled batches in which no chunk (and no text) appears twice; leftovers go to later batches."""

        def __init__(self, dataset: Dataset, *args: object, **kwargs: object) -> None:
            super().__init__(dataset, *args, **kwargs)
            self.size = len(dataset)

        def __iter__(self):  # type: ignore[no-untyped-def]
            g = torch.Generator()
            g.manual_seed(self.seed + self.epoch)
            remaining = torch.randperm(self.size, generator=g).tolist()
            while remaining:
                batch, seen, rest = [], set(), []
                for i in remaining:
                    keys = {("chunk", kept_pairs[i].chunk_id), rows[i]["anchor"], rows[i]["positive"]}
                    if len(batch) < self.batch_size and seen.isdisjoint(keys):
                        batch.append(i)
                        seen |= keys
                    else:
                        rest.append(i)
                if len(batch) < self.batch_size and self.drop_last:
                    break
                yield batch
                remaining = rest

    # The real questions split by whether their gold passage was held out of training (its text is a held-out chunk).
    held_texts = {" ".join(c.text.split()) for c in held}
    on_held = {q for q, ids in relevant.items() if any(" ".join(corpus[i].split()) in held_texts for i in ids)}

    def by_gold_split() -> dict[str, float | None]:
        if not on_held:
            return {}
        out: dict[str, float | None] = {}
        for key, group in (("gold_held_out", on_held), ("gold_trained", set(queries) - on_held)):
            sub = {q: queries[q] for q in group}
            out[key] = evaluate_retrieval(model, sub, corpus, {q: relevant[q] for q in group}, name=key).ndcg_at_10
        return out

    base_split = by_gold_split()
    tsdae_s = 0.0
    if a.tsdae_epochs:
        tsdae_s = tsdae(model, [c.text for c in train], a)
    distill = a.variant in ("inbatch-kl", "listwise-kl")
    if a.variant == "learned-prompts":
        model.prompts = {"query": "query: ", "document": "passage: "}
    if a.variant == "frozen-embeddings":
        model[0].auto_model.embeddings.requires_grad_(False)
    train_data: Dataset | dict[str, Dataset] = Dataset.from_list(rows)
    if a.variant.startswith("embed-distill"):
        distill_rows = rows
        if a.distill_strategies:  # the distillation rows from their own pairs (the projection is fit on them)
            distill_rows = [
                {"anchor": p.query, "positive": p.positive,
                 "label": np.stack([vec["Q\0" + p.query], vec["D\0" + p.positive]]).tolist()}
                for p in distill_pairs
            ]  # fmt: skip
            train_data = Dataset.from_list(distill_rows)
        model = with_projection(model, distill_rows)
        loss_or_losses: torch.nn.Module | dict[str, torch.nn.Module] = Weighted(
            losses.EmbedDistillLoss(model, "cosine"), a.distill_weight
        )
        if a.variant == "embed-distill-mnrl":
            mnrl_rows = [{"anchor": r["anchor"], "positive": r["positive"]} for r in rows]
            train_data = {"mnrl": Dataset.from_list(mnrl_rows), "distill": train_data}  # type: ignore[dict-item]
            loss_or_losses = {
                "mnrl": losses.MultipleNegativesRankingLoss(model, scale=a.scale or 30.0),
                "distill": loss_or_losses,
            }
    # where training starts, when TSDAE or the projection changed the base model (the *_base fields are the base's)
    changed = a.tsdae_epochs or a.variant.startswith("embed-distill") or a.variant == "learned-prompts"
    start_split = by_gold_split() if changed else {}
    if distill:
        loss: torch.nn.Module = Distill(model)
    elif a.variant == "symmetric-mnrl":
        loss = losses.MultipleNegativesSymmetricRankingLoss(model)
    else:
        scale = a.scale or (30.0 if a.variant == "mnrl-scale30" else 20.0)
        loss = losses.MultipleNegativesRankingLoss(model, scale=scale)
    prompts = {"anchor": "query: ", "positive": "passage: "} if a.variant == "learned-prompts" else None
    sampler = OnePairPerChunk if a.variant == "one-pair-per-chunk-per-batch" else BatchSamplers.NO_DUPLICATES
    args = Args(
        output_dir=str(Path("/tmp") / f"teacher-variant-{a.variant}"), num_train_epochs=a.epochs,
        per_device_train_batch_size=a.batch_size, learning_rate=a.lr, lr_scheduler_type=a.scheduler,
        warmup_steps=0.1, seed=a.seed, data_seed=a.seed,
        bf16=_loading.cpu_native_bf16() is not None, use_cpu=True, batch_sampler=sampler,
        prompts=prompts, save_strategy="no", report_to=[], logging_steps=20,
        dataloader_num_workers=0,
    )  # fmt: skip
    if a.freeze_embeddings:
        for param in model[0].auto_model.embeddings.parameters():
            param.requires_grad = False
    optimizers = (None, None)
    if a.llrd != 1.0:
        optimizers = (torch.optim.AdamW(layer_groups(model, a.lr, a.llrd), lr=a.lr, weight_decay=0.0), None)
    callbacks = []
    per_epoch: list[dict[str, float]] = []
    eval_s = [0.0]  # time spent in the per-epoch evaluations, left out of train_s
    if a.eval_each_epoch:
        from transformers import TrainerCallback

        from promptembed.finetune.heldout import heldout_queries

        hq, hc, hr = heldout_queries(held, chunks, seed=a.seed + 1)  # finetune()'s held-out estimate

        def scores(epoch: float) -> dict[str, float]:
            began = time.time()
            out = {
                "epoch": round(epoch, 2),
                "real": evaluate_retrieval(model, queries, corpus, relevant, name="real").ndcg_at_10,
                "heldout": evaluate_retrieval(model, hq, hc, hr, name="heldout").ndcg_at_10,
            }
            eval_s[0] += time.time() - began
            return out

        per_epoch.append(scores(0.0))

        class EachEpoch(TrainerCallback):  # type: ignore[misc]
            def on_epoch_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
                per_epoch.append(scores(state.epoch or 0.0))
                print(json.dumps(per_epoch[-1]), flush=True)

        callbacks.append(EachEpoch())
    epoch_states: list[dict[str, Any]] = []
    if a.epoch_average:
        from transformers import TrainerCallback

        class KeepEpochWeights(TrainerCallback):  # type: ignore[misc]
            def on_epoch_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
                epoch_states.append({k: v.detach().clone() for k, v in model.state_dict().items()})

        callbacks.append(KeepEpochWeights())
    eval_s[0] = 0.0  # the base model's scores above came before training
    start_state = {k: v.detach().clone() for k, v in model.state_dict().items()} if a.soup > 1 else {}
    started = time.time()
    if a.variant.startswith("embed-distill"):
        loss = loss_or_losses  # type: ignore[assignment]
    SentenceTransformerTrainer(
        model=model, args=args, train_dataset=train_data, loss=loss, callbacks=callbacks, optimizers=optimizers
    ).train()
    train_s = time.time() - started - eval_s[0]
    real = evaluate_retrieval(model, queries, corpus, relevant, name="real")
    soup: dict[str, object] = {}
    if epoch_states:  # scored, then the final weights are put back
        final = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(average_states(epoch_states))
        soup["epoch_average_ndcg_at_10"] = evaluate_retrieval(model, queries, corpus, relevant, name="real").ndcg_at_10
        soup["epoch_states"] = len(epoch_states)
        model.load_state_dict(final)
    if a.soup > 1:  # more members from the same start, pairs and schedule; only the training seed differs
        members = [{k: v.detach().clone() for k, v in model.state_dict().items()}]
        member_ndcg = [real.ndcg_at_10]
        for j in range(1, a.soup):
            model.load_state_dict(start_state)
            seed_j = a.seed + 1000 * j
            args_j = dataclasses.replace(args, seed=seed_j, data_seed=seed_j)
            began = time.time()
            SentenceTransformerTrainer(model=model, args=args_j, train_dataset=train_data, loss=loss).train()
            train_s += time.time() - began
            members.append({k: v.detach().clone() for k, v in model.state_dict().items()})
            member_ndcg.append(evaluate_retrieval(model, queries, corpus, relevant, name="real").ndcg_at_10)
        model.load_state_dict(average_states(members))
        soup |= {"soup": a.soup, "soup_member_ndcg_at_10": member_ndcg}
        real = evaluate_retrieval(model, queries, corpus, relevant, name="real")  # the soup's score is the headline
    split = (
        {f"{k}_base": v for k, v in base_split.items()}
        | {f"{k}_start": v for k, v in start_split.items()}
        | by_gold_split()
    )
    result = {
        "domain": a.domain, "variant": a.variant, "strategies": a.strategies, "per": a.per, "seed": a.seed,
        "teacher_temperature": tt if distill else None, "scale": a.scale or None, "epochs": a.epochs,
        "batch_size": a.batch_size, "lr": a.lr, "scheduler": a.scheduler,
        "pairs": len(pairs), "rows": len(rows),
        "teacher_agrees_with_source": agree, "base_agrees_with_source": student_agree, "threads": a.threads,
        "chunk_fraction": a.chunk_fraction if a.chunk_fraction < 1.0 else None, "chunks": len(chunks),
        "teacher_s": round(teacher_s),
        "tsdae_epochs": a.tsdae_epochs or None, "tsdae_lr": a.tsdae_lr if a.tsdae_epochs else None,
        "tsdae_s": round(tsdae_s) if a.tsdae_epochs else None,
        "distill_weight": a.distill_weight if a.variant.startswith("embed-distill") else None,
        "train_s": round(train_s),
        "ndcg_at_10": real.ndcg_at_10,
        "crop_sentences": a.crop_sentences or None, "ict_keep": a.ict_keep or None,
        "lead_sentence": a.lead_sentence or None,
        "distill_strategies": a.distill_strategies or None,
        "distill_per": a.distill_per if a.distill_strategies else None,
        "distill_pairs": len(distill_pairs) if a.distill_strategies else None,
        "heldout_fraction": a.heldout_fraction,
        "freeze_embeddings": a.freeze_embeddings or None, "llrd": a.llrd if a.llrd != 1.0 else None,
        "questions_gold_held_out": len(on_held), **split, "per_epoch": per_epoch or None, **soup,
    }  # fmt: skip
    print(json.dumps(result), flush=True)
    with OUT.open("a", encoding="utf-8") as f:
        f.write(json.dumps(result) + "\n")


def average_states(states: list[dict[str, Any]]) -> dict[str, Any]:
    """The uniform average of state dicts of one architecture (integer buffers taken from the first)."""
    import torch

    return {
        k: torch.stack([s[k] for s in states]).mean(0) if v.is_floating_point() else v for k, v in states[0].items()
    }


def layer_groups(model: object, lr: float, decay: float) -> list[dict[str, object]]:
    """AdamW parameter groups with layer-wise learning-rate decay: layer k (0 to n - 1, bottom up) trains at
    lr * decay ** (n - 1 - k), the embeddings at lr * decay ** n; everything else (pooler, Dense) at lr."""
    encoder = model[0].auto_model  # type: ignore[index]
    layers = list(encoder.encoder.layer)
    n = len(layers)
    groups = [{"params": [q for q in encoder.embeddings.parameters() if q.requires_grad], "lr": lr * decay**n}]
    groups += [{"params": list(layer.parameters()), "lr": lr * decay ** (n - 1 - k)} for k, layer in enumerate(layers)]
    seen = {id(q) for g in groups for q in g["params"]} | {id(q) for q in encoder.embeddings.parameters()}
    rest = [q for q in model.parameters() if id(q) not in seen and q.requires_grad]  # type: ignore[attr-defined]
    return [g for g in groups if g["params"]] + ([{"params": rest, "lr": lr}] if rest else [])


def with_projection(model: object, rows: list[dict[str, object]]) -> object:
    """The student with a linear layer into the teacher's space (no activation, no bias), then unit length.

    The layer starts as the ridge-regression map (lambda 0.01) from the base student's embeddings of the rows' texts
    to the teacher's, so training starts from the best linear fit, not from a random map. It stays in the model:
    the student then embeds into the teacher's 768 dimensions, and retrieval compares those."""
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Dense, Normalize

    from promptembed.finetune.evaluate import embed_texts

    st: SentenceTransformer = model  # type: ignore[assignment]
    queries = [str(r["anchor"]) for r in rows]
    passages = [str(r["positive"]) for r in rows]
    labels = np.asarray([r["label"] for r in rows], dtype=np.float32)
    s = np.concatenate(
        [embed_texts(st, queries, "query").cpu().numpy(), embed_texts(st, passages, "document").cpu().numpy()]
    )
    t = np.concatenate([labels[:, 0], labels[:, 1]])
    w = np.linalg.solve(s.T @ s + 0.01 * np.eye(s.shape[1]), s.T @ t)  # (384, 768)
    dense = Dense(
        s.shape[1], t.shape[1], bias=False, activation_function=torch.nn.Identity(),
        init_weight=torch.tensor(w.T, dtype=torch.float32),
    )  # fmt: skip
    return SentenceTransformer(modules=[st[0], st[1], dense, Normalize()], device="cpu", prompts=dict(st.prompts))


def tsdae(model: object, texts: list[str], a: argparse.Namespace) -> float:
    """TSDAE: a decoder tied to the encoder rebuilds each sentence from its pooled embedding after 60% of its words
    were deleted (sentence-transformers' ``DenoisingAutoEncoderLoss``; its dataset helper needs NLTK data this
    machine lacks, so the deletion is done here on whitespace words). Returns the seconds it took."""
    import re

    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer
    from sentence_transformers import SentenceTransformerTrainingArguments as Args
    from sentence_transformers.sentence_transformer.losses import DenoisingAutoEncoderLoss

    from promptembed import _loading

    rng = random.Random(4000 + a.seed)
    sentences = [s for t in texts for s in re.split(r"(?<=[.!?])\s+", " ".join(t.split())) if len(s.split()) >= 4]
    rows = []
    for s in sentences:
        words = s.split()
        kept = [w for w in words if rng.random() >= 0.6] or [rng.choice(words)]
        rows.append({"noisy": " ".join(kept), "text": s})
    print(f"TSDAE on {len(rows)} sentences", flush=True)
    args = Args(
        output_dir="/tmp/probe-tsdae", num_train_epochs=a.tsdae_epochs, per_device_train_batch_size=8,
        learning_rate=a.tsdae_lr, warmup_steps=0.0, seed=a.seed, data_seed=a.seed,
        bf16=_loading.cpu_native_bf16() is not None, use_cpu=True, save_strategy="no", report_to=[],
        logging_steps=50, dataloader_num_workers=0,
    )  # fmt: skip
    started = time.time()
    loss = DenoisingAutoEncoderLoss(model, tie_encoder_decoder=True)  # type: ignore[arg-type]
    SentenceTransformerTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), loss=loss).train()  # type: ignore[arg-type]
    return time.time() - started


if __name__ == "__main__":
    main()
