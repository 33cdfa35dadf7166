"""Accuracies, drops and faithfulness with cluster-bootstrap confidence intervals.

Units are templates: each template's accuracy on a variant is the mean over its instances
(and seeds), and intervals resample templates with replacement (percentile 95% intervals), the
same resample for every method so differences are paired.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

PERTURBATIONS = ("numbers", "names", "distractor")


def _ci(values: np.ndarray, idx: np.ndarray) -> dict:
    """Mean of per-template ``values`` and its bootstrap interval over resamples ``idx``."""
    values = np.asarray(values, float)
    boots = values[idx].mean(axis=1)
    return {"mean": float(values.mean()), "lo": float(np.percentile(boots, 2.5)),
            "hi": float(np.percentile(boots, 97.5)), "n_templates": int(len(values))}


def per_template(records: Sequence[Mapping], split: str, field: str,
                 variants: Sequence[str] | None = None) -> dict[int, dict[str, float]]:
    """``{template: {variant: mean of field}}`` over the records of ``split``."""
    acc: dict[int, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        if r["split"] == split and (variants is None or r["variant"] in variants) \
                and r[field] is not None:
            acc[r["template_id"]][r["variant"]].append(float(r[field]))
    return {t: {v: float(np.mean(x)) for v, x in by.items()} for t, by in acc.items()}


def summarize(records: Mapping[str, Sequence[Mapping]], *, variants: Sequence[str],
              n_boot: int = 2000, seed: int = 0) -> dict:
    """Every number the claims and the report use (see the module docstring).

    Args:
      records: ``{method: [{"split", "template_id", "variant", "correct", "faithful",
        "parsed"}, ...]}``; methods other than ``cot_sft`` are abstraction methods.
      variants: the evaluated variants, ``original`` first.
      n_boot: bootstrap resamples.
      seed: the resampling seed.
    """
    rng = np.random.default_rng(seed)
    out: dict = {"accuracy": {}, "drop": {}, "drop_by_variant": {}, "drop_vs_cot": {},
                 "faithful": {}, "faithful_gain": {}, "parsed": {}}
    methods = list(records)
    perturbed = [v for v in variants if v != "original"]
    for split in ("train", "held_out"):
        tables = {m: per_template(records[m], split, "correct") for m in methods}
        common = sorted(set.intersection(*(set(t) for t in tables.values()))) if tables else []
        common = [t for t in common if all(set(variants) <= set(tables[m][t])
                                           for m in methods)]
        if not common:
            continue
        idx = rng.integers(0, len(common), (n_boot, len(common)))
        out["accuracy"][split], out["drop"][split] = {}, {}
        out["drop_by_variant"][split], out["drop_vs_cot"][split] = {}, {}
        out["faithful"][split], out["parsed"][split] = {}, {}
        drops = {}
        for m in methods:
            acc = {v: np.array([tables[m][t][v] for t in common]) for v in variants}
            out["accuracy"][split][m] = {v: _ci(acc[v], idx) for v in variants}
            drop = acc["original"] - np.mean([acc[v] for v in perturbed], axis=0)
            drops[m] = drop
            out["drop"][split][m] = _ci(drop, idx)
            out["drop_by_variant"][split][m] = {
                v: float((acc["original"] - acc[v]).mean()) for v in perturbed}
            parsed = per_template(records[m], split, "parsed")
            out["parsed"][split][m] = float(np.mean([np.mean(list(parsed[t].values()))
                                                     for t in common]))
        if "cot_sft" in drops:
            for m in methods:
                if m != "cot_sft":
                    out["drop_vs_cot"][split][m] = _ci(drops["cot_sft"] - drops[m], idx)
        faithful = {}
        for m in methods:
            table = per_template(records[m], split, "faithful")
            if table and all(t in table for t in common):
                vals = np.array([np.mean(list(table[t].values())) for t in common])
                faithful[m] = vals
                out["faithful"][split][m] = _ci(vals, idx)
        if "abs_sft" in faithful and "abstral" in faithful:
            out["faithful_gain"][split] = _ci(faithful["abstral"] - faithful["abs_sft"], idx)
        out["templates_" + split] = len(common)
    return out
