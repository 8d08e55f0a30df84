"""Tables and pictures of a scan-ranking run (:mod:`vision_ssm.bench.scan_rank`)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

__all__ = ["markdown", "plot_accuracy", "plot_orientations", "plot_erf", "BEGIN", "END"]

BEGIN, END = "<!-- scans:begin -->", "<!-- scans:end -->"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _p(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return "<0.001" if x < 0.001 else f"{x:.3f}"


def _task_table(task: str, entry: Mapping[str, Any], scans) -> list[str]:
    by_group = entry.get("by_group", {})
    solved = entry.get("solved")
    head = ["scan", "val acc % (95% CI)", "Δ vs raster (pt)", "p (Holm)"] + [f"{g} %" for g in by_group]
    head += ["solved seeds"] if solved is not None else []
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for scan in scans:
        m = entry["scans"][scan]
        test = entry["vs_raster"].get(scan)
        cells = [f"`{scan}`", f"{_pct(m['mean'])} ± {_pct(m['ci'])}",
                 "–" if test is None else f"{100 * test['diff']:+.1f} ± {_pct(test['ci'])}",
                 "–" if test is None else _p(test.get("p_holm"))]
        cells += [_pct(g["scans"][scan]["mean"]) for g in by_group.values()]
        cells += [f"{solved[scan]} of {entry['seeds']}"] if solved is not None else []
        rows.append("| " + " | ".join(cells) + " |")
    fr = entry["friedman"]
    rows.append("")
    rows.append(f"Friedman over the {len(scans)} scans: χ² = {fr['statistic']:.1f}, p = {_p(fr['p'])}.")
    return rows


def markdown(result: Mapping[str, Any], summary: Mapping[str, Any], pictures: Mapping[str, str] | None = None) -> str:
    """The section written into model_zoo.md: settings, controls, one table per task, verdicts."""
    pictures = pictures or {}
    scans, seeds = result["scans"], result["seeds"]
    lines = [f"Measured by `{result.get('command', 'tools/rank_scans.py')}` on {result['date']} "
             f"({result['device']}, torch {result['versions']['torch']}; {len(seeds)} paired seeds "
             f"{', '.join(map(str, seeds))}; probe: {result['probe']}; "
             f"{result.get('minutes', 0):.0f} min).", ""]
    if result.get("controls"):
        lines += ["**Controls first.** A probe must learn the easy tier of a task, and a small CNN "
                  "must solve the task, before a difference between scans means anything:", "",
                  "| task | model | train acc % | val acc % |", "|---|---|---|---|"]
        lines += [f"| {c['task']} | {c['model']} | {_pct(c['train_acc'])} | {_pct(c['val_acc'])} |"
                  for c in result["controls"]]
        lines.append("")
    for task in result["tasks"]:
        s = result["settings"][task]
        start = (f", the first {s['curriculum']:.0%} on the start tier (all groups, no clutter)"
                 if s.get("curriculum") else "")
        lines += [f"### `{task}` ({s['size']}x{s['size']} px, {s['steps']} steps of {s['batch']}{start}, "
                  f"{s['val_samples']:,} validation images)", ""]
        lines += _task_table(task, summary[task], scans)
        lines.append("")
    verdicts = summary.get("verdicts", [])
    if verdicts:
        lines += ["### Verdicts", "", "| kind | claim | result | evidence |", "|---|---|---|---|"]
        for v in verdicts:
            found = v.get("found") or ("holds" if v["holds"] else "does not hold")
            source = f" ({v['source']})" if v.get("source") else ""
            lines.append(f"| {v['kind']} | {v['claim']}{source} | **{found}** | {_evidence(v['evidence'])} |")
        lines.append("")
    for caption, path in pictures.items():
        lines += [f"![{caption}]({path})", ""]
    return "\n".join(lines).rstrip() + "\n"


def _evidence(e: Mapping[str, Any]) -> str:
    if "diff" in e:
        return f"Δ {100 * e['diff']:+.1f} pt, p {_p(e['p'])}"
    if "statistic" in e:
        return f"Friedman p {_p(e['p'])}"
    if "horizontal" in e:
        return "; ".join(f"{k}: column − raster {100 * v['diff']:+.1f} pt, p(Holm) {_p(v.get('p_holm'))}"
                         for k, v in e.items() if v)
    if "means" in e:
        worst = min(e["means"], key=e["means"].get)
        return f"lowest mean: `{worst}`; random − raster p(Holm) {_p((e.get('vs_raster') or {}).get('p_holm'))}"
    return ""


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_accuracy(result: Mapping[str, Any], summary: Mapping[str, Any], path: str | Path) -> str:
    """One panel per task: each scan's mean validation accuracy with its 95% CI and the seeds."""
    plt = _plt()
    tasks, scans = result["tasks"], result["scans"]
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        entry = summary[task]["scans"]
        x = np.arange(len(scans))
        means = [100 * entry[s]["mean"] for s in scans]
        cis = [100 * entry[s]["ci"] for s in scans]
        ax.errorbar(x, means, yerr=cis, fmt="o", capsize=4, color="tab:blue", label="mean, 95% CI")
        for i, s in enumerate(scans):
            pts = [100 * r["val_acc"] for r in result["runs"] if r["task"] == task and r["scan"] == s]
            ax.scatter(np.full(len(pts), i) + 0.15, pts, s=8, color="0.5")
        ax.set_xticks(x, scans, rotation=40, ha="right")
        ax.set_title(task)
        ax.set_ylabel("validation accuracy (%)")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def plot_orientations(summary: Mapping[str, Any], scans, path: str | Path) -> str:
    """Heatmap of the lines task's accuracy per scan (rows) and line orientation (columns)."""
    plt = _plt()
    groups = summary["lines"]["by_group"]
    table = np.array([[100 * groups[g]["scans"][s]["mean"] for g in groups] for s in scans])
    fig, ax = plt.subplots(figsize=(1.3 * len(groups) + 2.5, 0.45 * len(scans) + 1.5))
    im = ax.imshow(table, cmap="viridis", vmin=min(50, table.min()), vmax=100)
    ax.set_xticks(range(len(groups)), list(groups))
    ax.set_yticks(range(len(scans)), scans)
    for i in range(len(scans)):
        for j in range(len(groups)):
            ax.text(j, i, f"{table[i, j]:.0f}", ha="center", va="center",
                    color="white" if table[i, j] < 80 else "black", fontsize=8)
    fig.colorbar(im, ax=ax, label="validation accuracy (%)")
    ax.set_title("lines: gap detection by orientation")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def plot_erf(maps: Mapping[str, np.ndarray], path: str | Path, title: str) -> str:
    """VMamba-style effective receptive fields: one panel per scan, the centre pixel marked."""
    plt = _plt()
    n = len(maps)
    fig, axes = plt.subplots(1, n, figsize=(2.1 * n, 2.5), squeeze=False)
    for ax, (scan, m) in zip(axes[0], maps.items()):
        ax.imshow(np.log10(m + 1e-4), cmap="RdYlGn", vmin=-4, vmax=0)
        c = m.shape[0] // 2
        ax.plot([c], [c], "k+", ms=6)
        ax.set_title(scan, fontsize=9)
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)
