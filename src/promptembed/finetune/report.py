"""Finetune reports: report.json, report.md, a before/after PNG plot and the model card."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["build_report", "peak_rss_mb", "write_card", "write_reports"]

_METRICS = (("ndcg_at_10", "nDCG@10"), ("mrr_at_10", "MRR@10"), ("recall_at_10", "recall@10"))
_MODELS = (("base", "base", "#9aa5b1"), ("finetuned", "finetuned", "#2f7ed8"), ("teacher", "teacher", "#f28f43"))
_STAGES = ("reading_chunking", "pairs", "mining", "training", "evaluation", "saving")


def peak_rss_mb() -> float | None:
    """This process's peak resident memory in MB; ``None`` where the OS does not tell it (Windows: no ``resource``)."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return round(peak / (2**20 if sys.platform == "darwin" else 1024), 1)


def build_report(
    *,
    output_name: str,
    base: str,
    verdict: str,
    improved: bool,
    evaluations: dict[str, dict[str, Any]],
    config: dict[str, Any],
    timings: dict[str, float],
    data: dict[str, Any],
    training: dict[str, Any],
    prompts: dict[str, str],
    peak_rss_mb: float | None,
) -> dict[str, Any]:
    """The report.json content: verdict, every evaluation, the configuration, stage times and peak memory.

    ``gain_intervals`` holds, per evaluation, the 95% paired-bootstrap interval of the nDCG@10 gain (None when the
    per-query scores are not known).
    """
    from promptembed.finetune.evaluate import gain_interval

    return {
        "output_name": output_name,
        "base_model": base,
        "verdict": verdict,
        "improved": improved,
        "evaluations": {n: {k: m.to_dict() for k, m in ev.items()} for n, ev in evaluations.items()},
        "gain_intervals": {n: gain_interval(ev["base"], ev["finetuned"]) for n, ev in evaluations.items()},
        "configuration": {k: (str(v) if isinstance(v, Path) else v) for k, v in config.items()},
        "timings_s": dict(timings),
        "peak_rss_mb": peak_rss_mb,
        "data": data,
        "training": training,
        "prompts": prompts,
        "seconds": timings.get("total"),
    }


def _plot(evaluations: dict[str, dict[str, dict[str, float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(evaluations)
    fig, axes = plt.subplots(1, len(sets), figsize=(5.5 * len(sets), 4), squeeze=False)
    for ax, name in zip(axes[0], sets, strict=True):
        present = [m for m in _MODELS if m[0] in evaluations[name]]
        width = 0.8 / len(present)
        xs = range(len(_METRICS))
        for j, (key, label, color) in enumerate(present):
            values = [evaluations[name][key][k] for k, _ in _METRICS]
            offset = (j - (len(present) - 1) / 2) * width
            ax.bar([x + offset for x in xs], values, width=width, label=label, color=color)
            for x, v in zip(xs, values, strict=True):
                ax.text(x + offset, v + 0.01, f"{v:.3f}", ha="center", fontsize=7)
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
    lines += [f"**{report['verdict']}**", ""]
    config = report.get("configuration", {})
    for name, ev in evaluations.items():
        lines += [f"## {name} ({int(ev['base']['n_queries'])} queries, {int(ev['base']['n_corpus'])} passages)", ""]
        teacher = "teacher" in ev
        lines += ["| metric | base | finetuned | change |" + (" teacher |" if teacher else "")]
        lines += ["|---|---|---|---|" + ("---|" if teacher else "")]
        for key, label in (*_METRICS, ("recall_at_100", "recall@100")):
            b, t = ev["base"].get(key, 0.0), ev["finetuned"].get(key, 0.0)
            extra = f" {ev['teacher'].get(key, 0.0):.4f} |" if teacher else ""
            lines.append(f"| {label} | {b:.4f} | {t:.4f} | {t - b:+.4f} |{extra}")
        lines.append("")
        interval = report.get("gain_intervals", {}).get(name)
        if interval:
            low, high = interval
            lines += [
                f"nDCG@10 change, 95% interval (paired bootstrap over the queries): {low:+.4f} to {high:+.4f}"
                + (": it spans zero, so the change is within this evaluation's noise." if low < 0 < high else "."),
                "",
            ]
    if "heldout_pseudo_queries" in evaluations:
        lines += [
            "Held-out pseudo-queries: one sentence of each held-out chunk (never trained on), cut out of its chunk; "
            "every chunk is a distractor. The same generator whatever the training strategies, so it does not "
            "reward the training templates, but it can reward heavy sentence (inverse-cloze) training; real "
            "questions (`eval_queries`) are the better test when you have them.",
            "",
        ]
    if config.get("teacher"):
        lines += [f"Teacher: `{config['teacher']}` (margin-MSE on its scores; evaluated with its own prompts).", ""]
    lines += ["## Configuration", "", "| setting | value |", "|---|---|"]
    trained_epochs = report.get("training", {}).get("epochs")
    planned_epochs = report.get("training", {}).get("epochs_planned", trained_epochs)
    for k, v in config.items():
        shown = f"`{v}`"
        if k == "epochs" and v == "auto" and planned_epochs is not None:  # what "auto" chose
            shown += f" ({planned_epochs:g} for {report['data']['train_pairs']} training rows)"
        stopped = config.get("max_steps") is not None and trained_epochs not in (None, planned_epochs)
        if k == "epochs" and stopped:  # max_steps came first
            shown += f"; {trained_epochs:g} trained (max_steps={config.get('max_steps')})"
        lines.append(f"| {k} | {shown} |")
    lines += ["", "## Time by stage", "", "| stage | wall s | CPU s (all threads) |", "|---|---|---|"]
    timings = report.get("timings_s", {})
    lines += [
        f"| {s} | {timings[s]:.1f} | {timings.get('cpu_' + s, 0.0):.1f} |" for s in (*_STAGES, "total") if s in timings
    ]
    peak = report.get("peak_rss_mb")
    lines += ["", f"Peak memory (RSS): {peak:.0f} MB" if peak is not None else "Peak memory (RSS): not known here", ""]
    lines += ["## Data", ""]
    data = report["data"]
    lines += [f"- documents read: {data['documents']}, skipped: {len(data['skipped'])}", f"- chunks: {data['chunks']}"]
    lines += [f"- training chunks: {data['train_chunks']}, held-out chunks: {data['heldout_chunks']}"]
    lines += [f"- training pairs: {data['train_pairs']}", ""]
    if data["pair_stats"]:
        lines += ["| strategy | generated | kept | filtered | duplicates | capped |", "|---|---|---|---|---|---|"]
        for strategy, st in data["pair_stats"].items():
            counts = " | ".join(str(st[k]) for k in ("generated", "kept", "filtered", "duplicates", "capped"))
            lines.append(f"| {strategy} | {counts} |")
        lines.append("")
    if data["skipped"]:
        lines += ["Skipped files:", ""] + [f"- `{s['path']}`: {s['reason']}" for s in data["skipped"]] + [""]
    lines += ["![before and after](before_after.png)", ""]
    md_path.write_text("\n".join(lines), encoding="utf-8")
    _plot(evaluations, png_path)
    return json_path, md_path, png_path


def write_card(
    folder: Path, base: str, dims: list[int] | None, evaluations: dict[str, Any], n_pairs: int, loss: str
) -> None:
    """The model card (README.md) beside the weights."""
    lines = [
        "---",
        "library_name: sentence-transformers",
        "tags: [sentence-transformers, promptembed, finetuned]",
        "---",
        "",
        f"# {folder.name.split('.tmp-')[0].lstrip('.')}",
        "",
        f"Finetuned from `{base}` with promptembed on {n_pairs} pairs (loss: {loss}).",
        "The model's query/document prompts are saved in config_sentence_transformers.json and applied by promptembed.",
        "",
    ]
    if dims:
        lines += [f"Matryoshka: trained with MatryoshkaLoss, matryoshka_dims: {dims}", ""]
    for name, ev in evaluations.items():
        b, t = ev["base"], ev["finetuned"]
        lines.append(
            f"- {name}: nDCG@10 {b.ndcg_at_10:.4f} -> {t.ndcg_at_10:.4f}, MRR@10 {b.mrr_at_10:.4f} -> {t.mrr_at_10:.4f}"
        )
    (folder / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
