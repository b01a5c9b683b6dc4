"""Finetune reports: report.json, report.md and a before/after PNG plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["write_reports"]

_METRICS = (("ndcg_at_10", "nDCG@10"), ("mrr_at_10", "MRR@10"), ("recall_at_10", "recall@10"))


def _plot(evaluations: dict[str, dict[str, dict[str, float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(evaluations)
    fig, axes = plt.subplots(1, len(sets), figsize=(5.5 * len(sets), 4), squeeze=False)
    for ax, name in zip(axes[0], sets, strict=True):
        base = [evaluations[name]["base"][k] for k, _ in _METRICS]
        tuned = [evaluations[name]["finetuned"][k] for k, _ in _METRICS]
        xs = range(len(_METRICS))
        ax.bar([x - 0.2 for x in xs], base, width=0.4, label="base", color="#9aa5b1")
        ax.bar([x + 0.2 for x in xs], tuned, width=0.4, label="finetuned", color="#2f7ed8")
        for x, b, t in zip(xs, base, tuned, strict=True):
            ax.text(x - 0.2, b + 0.01, f"{b:.3f}", ha="center", fontsize=8)
            ax.text(x + 0.2, t + 0.01, f"{t:.3f}", ha="center", fontsize=8)
        ax.set_xticks(list(xs), [label for _, label in _METRICS])
        ax.set_ylim(0, 1.08)
        n = evaluations[name]["base"].get("n_queries", 0)
        ax.set_title(f"{name} ({int(n)} queries)")
        ax.legend(loc="lower right")
    fig.suptitle("Retrieval before and after finetuning")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_reports(folder: Path, report: dict[str, Any]) -> tuple[Path, Path, Path]:
    """Write report.json, report.md and before_after.png into ``folder``; returns their paths."""
    json_path, md_path, png_path = folder / "report.json", folder / "report.md", folder / "before_after.png"
    json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    evaluations: dict[str, dict[str, dict[str, float]]] = report["evaluations"]
    lines = [f"# Finetune report: {report['output_name']}", "", f"Base model: `{report['base_model']}`", ""]
    verdict = report["verdict"]
    lines += [f"**{verdict}**", ""]
    for name, ev in evaluations.items():
        lines += [f"## {name} ({int(ev['base']['n_queries'])} queries, {int(ev['base']['n_corpus'])} passages)", ""]
        lines += ["| metric | base | finetuned | change |", "|---|---|---|---|"]
        for key, label in _METRICS:
            b, t = ev["base"][key], ev["finetuned"][key]
            lines.append(f"| {label} | {b:.4f} | {t:.4f} | {t - b:+.4f} |")
        lines.append("")
    lines += ["## Data", ""]
    data = report["data"]
    lines += [f"- documents read: {data['documents']}, skipped: {len(data['skipped'])}", f"- chunks: {data['chunks']}"]
    lines += [f"- training chunks: {data['train_chunks']}, held-out chunks: {data['heldout_chunks']}"]
    lines += [f"- training pairs: {data['train_pairs']}", ""]
    if data["pair_stats"]:
        lines += ["| strategy | generated | kept | filtered | duplicates | capped |", "|---|---|---|---|---|---|"]
        for name, st in data["pair_stats"].items():
            counts = " | ".join(str(st[k]) for k in ("generated", "kept", "filtered", "duplicates", "capped"))
            lines.append(f"| {name} | {counts} |")
        lines.append("")
    if data["skipped"]:
        lines += ["Skipped files:", ""] + [f"- `{s['path']}`: {s['reason']}" for s in data["skipped"]] + [""]
    lines += ["![before and after](before_after.png)", ""]
    md_path.write_text("\n".join(lines), encoding="utf-8")
    _plot(evaluations, png_path)
    return json_path, md_path, png_path
