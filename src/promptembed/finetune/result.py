"""What ``finetune()`` returns: the result, its verdict, and the warning for a model no better than its base."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptembed.errors import ConfigError
from promptembed.finetune.distributed import share_outcome
from promptembed.finetune.evaluate import RetrievalMetrics, gain_interval
from promptembed.finetune.heldout import KEYWORD_EVAL, SPECIALIZATION_LIMIT, specialization

__all__ = ["KEYWORD_EVAL", "FinetuneResult", "FinetuneWorseWarning", "headline", "result_from_rank0"]


class FinetuneWorseWarning(UserWarning):
    """The finetuned model scored below the base model."""


@dataclass
class FinetuneResult:
    """What a finetune produced: where it is, how it compares with the base model, and what was skipped."""

    output: Path
    evaluations: dict[str, dict[str, RetrievalMetrics]]
    improved: bool
    train_pairs: int
    skipped: list[dict[str, str]] = field(default_factory=list)
    report_md: Path | None = None
    plot: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def specialization(self) -> float | None:
        """The share of the base model's misses on held-out keyword queries that finetuning closed (None: no check).

        See :data:`~promptembed.finetune.heldout.SPECIALIZATION_LIMIT`.
        """
        ev = self.evaluations.get(KEYWORD_EVAL)
        return None if ev is None else specialization(ev["base"].ndcg_at_10, ev["finetuned"].ndcg_at_10)

    @property
    def specialized(self) -> bool:
        """The second guard fired: no real questions, and more than the limit of the keyword misses closed.

        The limit is :data:`~promptembed.finetune.heldout.SPECIALIZATION_LIMIT`.
        """
        share = self.specialization
        return headline(self.evaluations) != "eval_queries" and share is not None and share > SPECIALIZATION_LIMIT

    @property
    def verdict(self) -> str:
        """One line: improved or not, on which evaluation."""
        name = headline(self.evaluations)
        ev = self.evaluations[name]
        delta = ev["finetuned"].ndcg_at_10 - ev["base"].ndcg_at_10
        if self.specialized:
            kw = self.evaluations[KEYWORD_EVAL]
            moved = f"although {name} rose by {delta:+.4f}" if delta > 0 else f"({name}: {delta:+.4f})"
            return (
                f"WARNING: the finetuned model may be worse than the base on real questions {moved}: "
                f"on held-out keyword queries it went from nDCG@10 {kw['base'].ndcg_at_10:.4f} to "
                f"{kw['finetuned'].ndcg_at_10:.4f}, closing {self.specialization:.0%} of the base model's misses "
                f"(above {SPECIALIZATION_LIMIT:.0%}: it learned to match keywords, as the configurations that hurt "
                "real questions in the benchmark did); keep the base unless real questions (eval_queries= / "
                "--eval-queries) show a gain."
            )
        interval = gain_interval(ev["base"], ev["finetuned"])
        noise = interval is not None and interval[0] < 0 < interval[1]
        spread = ""
        if interval is not None:
            n = len(ev["base"].per_query_ndcg_at_10)
            spread = f"; 95% interval {interval[0]:+.4f} to {interval[1]:+.4f} over {n} queries"
            spread += ": within this evaluation's noise" if noise else ""
        if self.improved:
            return f"Finetuned model improves nDCG@10 on {name} by {delta:+.4f}{spread}."
        advice = "keep the base"
        if noise:  # a small drop on a small set: say what would settle it
            more = (
                "more real questions" if name == "eval_queries" else "real questions (eval_queries= / --eval-queries)"
            )
            advice += f" unless {more} show a gain"
        return (
            f"WARNING: the finetuned model is NOT better than the base on {name} "
            f"(nDCG@10 {delta:+.4f}{spread}); {advice}."
        )


def headline(evaluations: dict[str, Any]) -> str:
    """The evaluation a result is judged on: real questions when given, else the held-out pseudo-queries."""
    for name in ("eval_queries", "heldout_pseudo_queries"):
        if name in evaluations:
            return name
    return next(iter(evaluations))


def result_from_rank0(output: Path, skipped: list[dict[str, str]]) -> FinetuneResult:
    """On a rank other than 0: wait for rank 0's save, then return the same result, read from its report."""
    error = share_outcome(None)
    if error is not None:
        raise ConfigError(error)
    report = json.loads((output / "report.json").read_text(encoding="utf-8"))
    evaluations = {
        name: {side: RetrievalMetrics(**metrics) for side, metrics in ev.items()}
        for name, ev in report["evaluations"].items()
    }
    return FinetuneResult(
        output=output,
        evaluations=evaluations,
        improved=bool(report["improved"]),
        train_pairs=int(report["data"]["train_pairs"]),
        skipped=skipped,
        report_md=output / "report.md",
        plot=output / "before_after.png",
        timings=dict(report.get("timings_s", {})),
    )
