"""Write benchmarks/FINETUNE.md (and finetune_heldout_vs_real.png) from benchmarks/finetune_runs.jsonl."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "FINETUNE.md"
PLOT = HERE / "finetune_heldout_vs_real.png"
STAGES = ("reading_chunking", "pairs", "mining", "training", "evaluation", "saving")
REAL, HELD = "eval_queries", "heldout_pseudo_queries"


def _gain(row: dict[str, Any], name: str, key: str = "ndcg_at_10") -> float:
    ev = row["evaluations"][name]
    return float(ev["finetuned"][key] - ev["base"][key])


def _mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:+.4f}"
    return f"{statistics.mean(values):+.4f} ± {statistics.stdev(values):.4f} (min {min(values):+.4f})"


def _spearman(xs: list[float], ys: list[float]) -> float | None:
    if len(xs) < 3:
        return None
    from scipy.stats import spearmanr

    return float(spearmanr(xs, ys).statistic)


def _plot(rows: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for domain, marker in (("zaragoza", "o"), ("debian", "s")):
        mine = [r for r in rows if r["domain"] == domain and HELD in r["evaluations"]]
        pts = [(_gain(r, HELD), _gain(r, REAL), r["config"]) for r in mine]
        if pts:
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], marker=marker, label=domain)
            for x, y, name in pts:
                ax.annotate(name, (x, y), fontsize=6, alpha=0.7)
    ax.axhline(0, color="grey", lw=0.5)
    ax.axvline(0, color="grey", lw=0.5)
    ax.set_xlabel("held-out pseudo-query gain (nDCG@10)")
    ax.set_ylabel("real-question gain (nDCG@10)")
    ax.legend()
    ax.set_title("Does the held-out estimate predict the real gain?")
    fig.tight_layout()
    fig.savefig(PLOT, dpi=110)
    plt.close(fig)


def write_report(rows: list[dict[str, Any]]) -> None:
    by: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by[(row["domain"], row["config"])].append(row)
    from finetune_domains import CREDITS

    lines = [
        "# Finetune benchmark",
        "",
        "Written by `make bench-finetune` (`benchmarks/finetune_bench.py`) from `benchmarks/finetune_runs.jsonl`, one",
        "line per finished run; rerunning resumes (`BENCH_ARGS='--only NAME'` runs one configuration). Base model:",
        "the bundled all-MiniLM-L6-v2; CPU. The real questions are used only for evaluation; training sees documents",
        "only. Gains are finetuned minus base on the same queries and corpus. Configurations are the library defaults",
        "plus the settings in `CONFIGS` of `finetune_bench.py`.",
        "",
        "Domains (see `benchmarks/finetune_domains.py`):",
        "",
        "- **zaragoza** (development set): documents = the 503 answers, one file each; test = the 503 real questions",
        f"  against the 503 answers. Data: {CREDITS['zaragoza']}.",
        "- **debian** (test set, never tuned on): documents = the Debian Reference (14 HTML chapters) + the Debian",
        "  FAQ's answers (one file each, no question text; cross-references quoting another question's title are cut);",
        '  test = the FAQ\'s questions (with a "?" and an answer of 15+ words) against their answers plus every chunk',
        f"  of the Reference as distractors. About 1 MB of text: also the speed row. Data: {CREDITS['debian']}.",
        "",
    ]
    notes = HERE / "finetune_notes.md"
    if notes.is_file():
        lines += [notes.read_text(encoding="utf-8").strip(), ""]
    for domain in ("zaragoza", "debian"):
        keys = [k for k in by if k[0] == domain]
        if not keys:
            continue
        sample = by[keys[0]][0]["evaluations"][REAL]["base"]
        lines += [f"## {domain}: {int(sample['n_queries'])} real questions, {int(sample['n_corpus'])} passages", ""]
        lines += [
            f"Base: nDCG@10 {sample['ndcg_at_10']:.4f}, MRR@10 {sample['mrr_at_10']:.4f}, recall@10 "
            f"{sample['recall_at_10']:.4f}, recall@100 {sample.get('recall_at_100', 0):.4f}.",
            "",
            "| configuration | seeds | nDCG@10 gain (mean ± sd) | vs default, same seeds | nDCG@10 | MRR@10 | R@10 "
            "| R@100 | held-out gain | rows | wall s (read / pairs / mine / train / eval / save = total) | peak MB |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        default = {r["seed"]: _gain(r, REAL) for r in by.get((domain, "default"), [])}
        for key in sorted(keys, key=lambda k: -statistics.mean(_gain(r, REAL) for r in by[k])):
            runs = by[key]
            fin = [r["evaluations"][REAL]["finetuned"] for r in runs]
            mean = {m: statistics.mean(f[m] for f in fin) for m in ("ndcg_at_10", "mrr_at_10", "recall_at_10")}
            r100 = statistics.mean(f.get("recall_at_100", 0.0) for f in fin)
            held = [_gain(r, HELD) for r in runs if HELD in r["evaluations"]]
            t = runs[0]["timings_s"]
            split = " / ".join(f"{t.get(s, 0):.0f}" for s in STAGES) + f" = {t.get('total', 0):.0f}"
            if "cpu_total" in t:
                split += f" (CPU {t['cpu_total']:.0f})"
            teacher = runs[0]["evaluations"][REAL].get("teacher")
            name = key[1] + (f" (teacher nDCG@10 {teacher['ndcg_at_10']:.4f})" if teacher else "")
            paired = [_gain(r, REAL) - default[r["seed"]] for r in runs if r["seed"] in default]
            versus = "-" if key[1] == "default" or not paired else f"{statistics.mean(paired):+.4f}"
            lines.append(
                f"| {name} | {','.join(str(r['seed']) for r in runs)} | {_mean_sd([_gain(r, REAL) for r in runs])} "
                f"| {versus} "
                f"| {mean['ndcg_at_10']:.4f} | {mean['mrr_at_10']:.4f} | {mean['recall_at_10']:.4f} | {r100:.4f} "
                f"| {_mean_sd(held) if held else '-'} | {runs[0]['train_rows']} | {split} "
                f"| {max(r['peak_rss_mb'] for r in runs):.0f} |"
            )
        lines.append("")
    pts = [r for r in rows if HELD in r["evaluations"]]
    if pts:
        rho_all = _spearman([_gain(r, HELD) for r in pts], [_gain(r, REAL) for r in pts])
        lines += ["## Does the held-out estimate rank configurations like the real questions?", ""]
        for domain in ("zaragoza", "debian"):
            sub = [r for r in pts if r["domain"] == domain]
            rho = _spearman([_gain(r, HELD) for r in sub], [_gain(r, REAL) for r in sub])
            lines.append(f"- {domain}: Spearman rho over {len(sub)} runs = {'n/a' if rho is None else f'{rho:.2f}'}")
        both = "n/a" if rho_all is None else f"{rho_all:.2f}"
        lines.append(f"- both domains: Spearman rho over {len(pts)} runs = {both}")
        lines.append(
            "- the runs that made real retrieval worse, and whether the held-out estimate flagged them (the keyword "
            'check that `finetune()` adds since 2026-11-27 is in "A second guard" above):'
        )
        flagged = [r for r in pts if _gain(r, REAL) < 0]
        for r in flagged:
            lines.append(
                f"- {r['key']} made real retrieval worse ({_gain(r, REAL):+.4f}); held-out gain {_gain(r, HELD):+.4f}: "
                + ("flagged by it (not better)" if _gain(r, HELD) <= 0 else "NOT flagged by it")
            )
        lines += ["", f"![held-out vs real gain]({PLOT.name})", ""]
        _plot(pts)
    machines = {(r["cpu_count"], r["machine"], r["torch_threads"]) for r in rows}
    loads = [x for r in rows for x in r["loadavg_1min"]]
    lines += [
        "## Machine",
        "",
        f"Runs on {', '.join(f'{c} cores ({m}), {t} torch threads' for c, m, t in sorted(machines))}; 1-minute load "
        f"average during runs {min(loads):.1f} to {max(loads):.1f} (a shared machine: wall times are noisy).",
        "",
    ]
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
