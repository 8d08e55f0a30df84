"""Statistics for comparing methods over paired seeds: confidence intervals, Friedman, Holm.

Every function takes ``scores``: a mapping method -> list of per-seed scores, where position i of
every list comes from the same seed (same data and, where shapes allow, the same initialisation).
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

__all__ = ["mean_ci", "holm", "paired_tests", "friedman"]


def _check_paired(scores: Mapping[str, Sequence[float]]) -> int:
    sizes = {len(v) for v in scores.values()}
    if len(sizes) != 1:
        raise ValueError(f"`scores` must hold one score per seed for every method (paired), got lengths "
                         f"{ {k: len(v) for k, v in scores.items()} }")
    return sizes.pop()


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """The mean and the half-width of its two-sided t confidence interval (0 for one value)."""
    from scipy import stats
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("`values` must not be empty")
    if x.size == 1:
        return float(x[0]), 0.0
    half = stats.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)
    return float(x.mean()), float(half)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order as given)."""
    p = np.asarray(pvalues, dtype=float)
    order = np.argsort(p)
    adjusted = np.empty_like(p)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def paired_tests(scores: Mapping[str, Sequence[float]], baseline: str,
                 confidence: float = 0.95) -> dict[str, dict[str, float]]:
    """Each method against ``baseline``: mean paired difference, its CI, the two-sided paired
    t-test p-value and the Holm-adjusted one (over all the comparisons made here)."""
    from scipy import stats
    n = _check_paired(scores)
    if baseline not in scores:
        raise ValueError(f"`baseline` {baseline!r} is not among the methods {sorted(scores)}")
    base = np.asarray(scores[baseline], dtype=float)
    out: dict[str, dict[str, float]] = {}
    for name, vals in scores.items():
        if name == baseline:
            continue
        diff = np.asarray(vals, dtype=float) - base
        mean, half = mean_ci(diff, confidence)
        if n < 2:
            p = float("nan")
        elif np.allclose(diff, diff[0]):  # no spread: the t statistic is undefined
            p = 1.0 if diff[0] == 0 else 0.0
        else:
            p = float(stats.ttest_rel(vals, base).pvalue)
        out[name] = dict(diff=mean, ci=half, p=p)
    names = [k for k in out if not math.isnan(out[k]["p"])]
    for name, adj in zip(names, holm([out[k]["p"] for k in names])):
        out[name]["p_holm"] = adj
    return out


def friedman(scores: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """Friedman's test that all methods rank alike across seeds (needs 3+ methods, 2+ seeds)."""
    from scipy import stats
    n = _check_paired(scores)
    if len(scores) < 3 or n < 2:
        return dict(statistic=float("nan"), p=float("nan"))
    table = np.asarray(list(scores.values()), dtype=float)
    if np.allclose(table, table[0]):
        return dict(statistic=0.0, p=1.0)
    result = stats.friedmanchisquare(*table)
    return dict(statistic=float(result.statistic), p=float(result.pvalue))
