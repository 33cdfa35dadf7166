"""The Thought Branches experiments: importance curves, off- vs on-policy interventions,
resilience. Every rollout goes through the resumable store under ``<workdir>/rollouts/``.

1. ``importance``: per model, screen generated problems (``select.screen_samples`` base CoTs
   each) and keep those whose accuracy lies in ``[acc_low, acc_high]``; take the first
   answered base CoT of each, resample every sentence (``rollouts`` per prefix, forced answers
   too where configured), compute every metric with bootstrap CIs, write one browser view per
   CoT, and compare sentence types.
2. ``interventions``: on decision prompts, after the first computation sentence ``i`` of the
   base CoT, insert the target sentence off-policy, and search on-policy for a resample of
   ``s_i`` followed by it; effect = P(base answer) after the intervention − P(base answer) in
   ``S_{i+1}``.
3. ``resilience``: for the sentences with the largest resampling importance, the resilience
   loop; score distribution, persistence by type, CF++ vs the one-shot counterfactual effect.
"""

from __future__ import annotations

import json
import time
import zlib
from collections import defaultdict
from pathlib import Path

import jax
import numpy as np

from experiments.progress import Progress
from experiments.workdir import Workdir, atomic_write_json
from llm_tools.thought_branches import (
    RolloutSet,
    RolloutStore,
    SamplingParams,
    Trace,
    analyze,
    bootstrap_mean,
    cf_plus_plus,
    collect,
    decision_problems,
    extract_answer,
    format_prompt,
    generated_problems,
    gsm_symbolic_problems,
    off_policy_prefix,
    on_policy_search,
    plot_importance,
    plot_resilience,
    resilience,
    rollout_sets,
    sampler_identity,
    sentence_type,
    sweep,
    write_html,
)
from llm_tools.thought_branches.metrics import accuracy

__all__ = ["run"]

TYPES = ("plan", "compute", "check", "answer")


# -- models ---------------------------------------------------------------------------------

class ModelSpec:
    """A sampler plus how to prompt it."""

    def __init__(self, name, sampler, *, chat: bool, forced_suffix: str, cfg):
        self.name, self.sampler, self.chat, self.cfg = name, sampler, chat, cfg
        self.forced_suffix = forced_suffix
        self.tok = self.sampler.tokenizer

    def prompt_ids(self, problem) -> list[int]:
        if self.chat == "reference":  # the Thought Anchors prompt for R1-style servers
            return self.tok.encode(
                "Solve this math problem step by step. You MUST put your final answer in "
                f"\\boxed{{}}. Problem: {problem.question} Solution: \n<think>\n")
        if self.chat:
            text = self.tok.apply_chat_template(
                [{"role": "user", "content": problem.question + " Think step by step and end "
                  "with 'So the answer is N.'"}], add_generation_prompt=True)
            return self.tok.encode(text)
        return self.tok.encode(format_prompt(problem),
                               add_bos=getattr(self.sampler, "add_bos", False))

    def params(self) -> SamplingParams:
        return SamplingParams(temperature=self.cfg.temperature, top_p=self.cfg.top_p,
                              max_new_tokens=self.cfg.max_new_tokens)


def load_models(config) -> tuple[list[ModelSpec], list[str]]:
    """The configured models that can run here, and notes on those that cannot."""
    specs, notes = [], []
    for name in [m.strip() for m in config.models.split(",") if m.strip()]:
        if name == "reasoner":
            from llm_tools.thought_branches import reasoner_sampler

            specs.append(ModelSpec("reasoner", reasoner_sampler(), chat=False,
                                   forced_suffix=" So the answer is", cfg=config.reasoner))
        elif name == "smollm2":
            from llm_tools import JaxSampler, find_smollm2

            if find_smollm2() is None:
                notes.append("smollm2 skipped: run `python -m llm_tools.fetch smollm2`")
                continue
            specs.append(ModelSpec("smollm2", JaxSampler.from_smollm2(max_batch=32), chat=True,
                                   forced_suffix="\nSo the answer is", cfg=config.smollm2))
        elif name == "server":
            if not config.server_model:
                notes.append("server skipped: set --config.server_model (and server_url)")
                continue
            from llm_tools import OpenAISampler

            specs.append(ModelSpec("server", OpenAISampler(config.server_url,
                                                           config.server_model),
                                   chat="reference", forced_suffix="\n</think>\n\nTherefore, "
                                   "the final answer is \\boxed{", cfg=config.smollm2))
        else:
            raise ValueError(f"config.models: unknown model {name!r} (reasoner, smollm2, server)")
    return specs, notes


def load_embedder():
    """all-MiniLM-L6-v2 (the resampling literature's sentence model)."""
    try:
        from llm_tools import MiniLMEmbedder
    except ImportError as e:
        raise RuntimeError("thought_branches needs llm_tools.MiniLMEmbedder (issue 11's "
                           "embedder)") from e
    return MiniLMEmbedder.from_pretrained()


def answer_fn_for(kind: str):
    """Normalized answer of a rollout's text; only an explicit "answer is" statement counts."""

    def fn(text: str) -> str:
        return extract_answer(text, kind) if "answer is" in text.lower() or "\\boxed" in text \
            else ""

    return fn


# -- problem selection ----------------------------------------------------------------------

def select_problems(spec: ModelSpec, config, workdir: Path, key, *, n: int, decisions=False):
    """Problems whose screened accuracy lies in [acc_low, acc_high], with a base CoT each.

    Cached in ``selection_<model>[_dec].json``; returns dicts with the problem, its screened
    accuracy, prompt ids and base CoT ids.
    """
    sel = config.select
    path = workdir / f"selection_{spec.name}{'_dec' if decisions else ''}.json"
    if path.exists():
        return json.loads(path.read_text())
    if decisions:
        cands = decision_problems(sel.candidates, key=jax.random.fold_in(key, 1))
    else:
        cands = generated_problems(sel.candidates, key=jax.random.fold_in(key, 0), p_slip=0.0)
        extra = getattr(spec.cfg, "gsm_symbolic", 0)
        if extra:
            cands += gsm_symbolic_problems(extra, key=jax.random.fold_in(key, 2))
    prompts = [spec.prompt_ids(p) for p in cands]
    outs = spec.sampler.generate_ids(prompts, n=sel.screen_samples, key=jax.random.fold_in(key, 3),
                                     **spec.params().sampler_kwargs())
    chosen, screened = [], []
    for p, pid, comps in zip(cands, prompts, outs, strict=True):
        fn = answer_fn_for(p.kind)
        answers = [fn(c.text) for c in comps]
        acc = float(np.mean([a == p.answer for a in answers]))
        screened.append(acc)
        if len(chosen) >= n:
            continue
        lo_ok = decisions or sel.acc_low <= acc <= sel.acc_high
        if not lo_ok:
            continue
        for c, a in zip(comps, answers, strict=True):
            if not a:
                continue
            try:
                tr = Trace.from_ids(spec.tok, pid, c.token_ids)
            except ValueError:
                continue
            if 2 <= tr.num_sentences <= sel.max_sentences:
                chosen.append({"id": p.id, "question": p.question, "truth": p.answer,
                               "kind": p.kind, "screen_accuracy": acc, "base_answer": a,
                               "prompt_ids": list(pid), "cot_ids": list(tr.cot_ids)})
                break
    result = {"problems": chosen, "screened_accuracy": screened,
              "screened_in_range": float(np.mean([sel.acc_low <= a <= sel.acc_high
                                                  for a in screened]))}
    atomic_write_json(path, result)
    return result


def _store(workdir: Path, spec: ModelSpec, params: SamplingParams) -> RolloutStore:
    return RolloutStore(workdir / "rollouts" / spec.name, model=sampler_identity(spec.sampler),
                        params=params)


def _trace(spec, rec) -> Trace:
    return Trace.from_ids(spec.tok, rec["prompt_ids"], rec["cot_ids"])


# -- 1. importance ---------------------------------------------------------------------------

def importance(config, workdir: Path, specs, embedder, key) -> dict:
    wd = Workdir(workdir)
    out, analyses = {}, []
    for m, spec in enumerate(specs):
        mk = jax.random.fold_in(key, m)
        sel = select_problems(spec, config, workdir, mk, n=spec.cfg.problems)
        store = _store(workdir, spec, spec.params())
        probs = sel["problems"]
        prog = Progress(max(len(probs), 1), name=f"importance/{spec.name}", interval_s=20)
        per_type = defaultdict(lambda: defaultdict(list))
        model_analyses = []
        for k, rec in enumerate(probs):
            tr = _trace(spec, rec)
            fn = answer_fn_for(rec["kind"])
            S, F = sweep(spec.sampler, tr, store, rec["id"], n=spec.cfg.rollouts,
                         key=jax.random.fold_in(mk, 10), answer_fn=fn,
                         forced_suffix=spec.forced_suffix if spec.cfg.forced else None)
            a = analyze(tr, S, rec["truth"], F=F, embedder=embedder,
                        key=jax.random.fold_in(mk, 20 + k), n_boot=config.n_boot,
                        alpha=config.alpha,
                        problem_id=rec["id"], model=spec.name,
                        prompt=spec.tok.decode(rec["prompt_ids"]),
                        extra={"truth": rec["truth"], "screen_accuracy": rec["screen_accuracy"]})
            atomic_write_json(workdir / "analyses" / spec.name / f"{rec['id']}.json",
                              a.to_json())
            write_html(workdir / "views" / spec.name / f"{rec['id']}.html", a)
            model_analyses.append(a)
            for (*_, typ), mi in zip(a.sentences, a.metrics, strict=True):
                for name, v in mi.items():
                    per_type[typ][name].append(v[0])
            prog.update(k + 1)
        analyses += model_analyses
        if model_analyses:
            fig = plot_importance(model_analyses[:8], "resampling_importance_accuracy")
            wd.save_figure(fig, f"importance_{spec.name}.png")
        out[spec.name] = _type_summary(per_type, config, jax.random.fold_in(mk, 99))
        out[spec.name].update(problems=len(probs), screened=len(sel["screened_accuracy"]),
                              screened_in_range=sel["screened_in_range"],
                              rollouts=spec.cfg.rollouts)
    return {"importance": out, "analyses": [a.problem_id for a in analyses]}


def _type_summary(per_type, config, key) -> dict:
    """Mean |metric| per sentence type with bootstrap CIs, and plan+check minus compute."""
    res = {"by_type": {}}
    metrics = ("counterfactual_importance_kl", "counterfactual_importance_accuracy",
               "resampling_importance_accuracy", "resampling_importance_kl",
               "forced_importance_accuracy")
    for t in (*TYPES, "other"):
        d = per_type.get(t)
        if not d:
            continue
        row = {"n": len(d["accuracy"])}
        for mname in metrics:
            vals = np.abs(np.asarray(d.get(mname, []), float))
            if vals.size >= 2:
                e = bootstrap_mean(vals, n_boot=config.n_boot, key=jax.random.fold_in(
                    key, zlib.crc32(f"{t}/{mname}".encode()) & 0x7FFFFFFF))
                row[mname] = list(e)
            elif vals.size == 1:
                row[mname] = [float(vals[0])] * 3
        res["by_type"][t] = row
    for mname in ("counterfactual_importance_kl", "resampling_importance_accuracy"):
        pc = np.abs(np.asarray(per_type["plan"].get(mname, []) + per_type["check"].get(mname, []),
                               float))
        co = np.abs(np.asarray(per_type["compute"].get(mname, []), float))
        if pc.size >= 2 and co.size >= 2:
            res[f"plan_check_minus_compute_{mname}"] = list(_diff_ci(pc, co, config.n_boot,
                                                                     key))
        ranked = sorted(((row[mname][0], t) for t, row in res["by_type"].items()
                         if mname in row), reverse=True)
        if ranked:
            res[f"top_type_{mname}"] = ranked[0][1]
    return res


def _diff_ci(a, b, n_boot, key):
    ka, kb = jax.random.split(key)
    ra = np.asarray(jax.random.randint(ka, (n_boot, a.size), 0, a.size))
    rb = np.asarray(jax.random.randint(kb, (n_boot, b.size), 0, b.size))
    d = a[ra].mean(1) - b[rb].mean(1)
    lo, hi = np.quantile(d, [0.025, 0.975])
    return float(a.mean() - b.mean()), float(lo), float(hi)


# -- 2. interventions ------------------------------------------------------------------------

def interventions(config, workdir: Path, specs, embedder, key) -> dict:
    c = config.interventions
    out = {}
    for m, spec in enumerate(specs[:1]):  # the trained reasoner (first model)
        mk = jax.random.fold_in(key, 100 + m)
        sel = select_problems(spec, config, workdir, mk, n=c.problems, decisions=True)
        params = spec.params()
        store = _store(workdir, spec, params)
        rows = []
        prog = Progress(max(len(sel["problems"]), 1), name=f"interventions/{spec.name}",
                        interval_s=20)
        for k, rec in enumerate(sel["problems"]):
            tr = _trace(spec, rec)
            fn = answer_fn_for(rec["kind"])
            comp = [s.index for s in tr.sentences if sentence_type(s.text) == "compute"]
            if not comp:
                continue
            i = comp[0]
            base = rec["base_answer"]
            S_next = collect(spec.sampler, store, rec["id"], "resample", i + 1,
                             tr.prefix_ids(i + 1), c.rollouts, key=jax.random.fold_in(mk, 10),
                             answer_fn=fn, prefix_text=tr.prefix_text(i + 1))
            off_ids = off_policy_prefix(spec.sampler, tr, i, c.target)
            off_text = spec.tok.decode(off_ids[len(tr.prompt_ids):])
            off = collect(spec.sampler, store, rec["id"], "offpolicy", i, off_ids, c.rollouts,
                          key=jax.random.fold_in(mk, 11), answer_fn=fn, prefix_text=off_text)
            on = on_policy_search(spec.sampler, tr, i, c.target, embedder=embedder,
                                  key=jax.random.fold_in(mk, 12 + k), params=params,
                                  n_iterations=c.n_iterations, n_candidates=c.n_candidates,
                                  n_continuations=c.n_continuations, threshold=c.threshold)
            p_base = _rate(S_next, base)
            row = {"id": rec["id"], "sentence": i, "base_answer": base, "p_base": p_base,
                   "off_effect": _rate(off, base) - p_base, "on_success": on.success,
                   "on_cosine": on.cosine, "on_candidate": on.candidate,
                   "on_next": on.next_sentence}
            if on.success:
                on_text = spec.tok.decode(list(on.prefix_ids)[len(tr.prompt_ids):])
                on_r = collect(spec.sampler, store, rec["id"], "onpolicy", i,
                               list(on.prefix_ids), c.rollouts, key=jax.random.fold_in(mk, 13),
                               answer_fn=fn, prefix_text=on_text)
                row["on_effect"] = _rate(on_r, base) - p_base
            rows.append(row)
            prog.update(k + 1)
        out[spec.name] = _intervention_summary(rows, config, jax.random.fold_in(mk, 99))
        atomic_write_json(workdir / f"interventions_{spec.name}.json", rows)
    return {"interventions": out}


def _rate(rollouts, answer: str) -> float:
    return accuracy(RolloutSet.from_answers([r.answer for r in rollouts], answer))


def _intervention_summary(rows, config, key) -> dict:
    off = np.array([r["off_effect"] for r in rows], float)
    paired = [r for r in rows if "on_effect" in r]
    on = np.array([r["on_effect"] for r in paired], float)
    res = {"problems": len(rows), "on_policy_successes": len(paired),
           "off_mean": float(off.mean()) if off.size else 0.0,
           "off_std": float(off.std(ddof=1)) if off.size > 1 else 0.0,
           "on_mean": float(on.mean()) if on.size else 0.0,
           "on_std": float(on.std(ddof=1)) if on.size > 1 else 0.0,
           "off_mean_abs": float(np.abs(off).mean()) if off.size else 0.0,
           "on_mean_abs": float(np.abs(on).mean()) if on.size else 0.0}
    if len(paired) >= 2:
        d = np.array([abs(r["on_effect"]) - abs(r["off_effect"]) for r in paired])
        res["on_minus_off_abs"] = list(bootstrap_mean(d, n_boot=config.n_boot, key=key))
    return res


# -- 3. resilience ---------------------------------------------------------------------------

def resilience_experiment(config, workdir: Path, specs, embedder, key) -> dict:
    c = config.resilience
    spec = specs[0]
    mk = jax.random.fold_in(key, 200)
    sel = select_problems(spec, config, workdir, jax.random.fold_in(key, 0),
                          n=spec.cfg.problems)
    params = spec.params()
    store = _store(workdir, spec, params)
    rows, all_scores, by_type = [], [], defaultdict(list)
    probs = sel["problems"][: c.problems]
    for k, rec in enumerate(probs):
        tr = _trace(spec, rec)
        fn = answer_fn_for(rec["kind"])
        path = workdir / "analyses" / spec.name / f"{rec['id']}.json"
        S, _ = sweep(spec.sampler, tr, store, rec["id"], n=spec.cfg.rollouts,
                     key=jax.random.fold_in(jax.random.fold_in(key, 0), 10), answer_fn=fn)
        sets = rollout_sets(tr, S, rec["truth"], embedder=embedder)
        # the sentences whose resampling moves accuracy most (the reference's top-N)
        ri = [abs(accuracy(sets[i + 1]) - accuracy(sets[i])) for i in range(tr.num_sentences)]
        order = [int(i) for i in np.argsort(ri)[::-1][: c.sentences]]
        for i in order:
            res = resilience(spec.sampler, tr, i, store, rec["id"], embedder=embedder,
                             key=mk, answer_fn=fn, n_rollouts=c.rollouts,
                             max_iterations=c.max_iterations)
            typ = sentence_type(tr.sentences[i].text)
            all_scores += res.scores.tolist()
            by_type[typ] += res.scores.tolist()
            different = sets[i].similarity < 0.8
            d_set = RolloutSet.from_answers([r.answer for r, d in zip(S[i], different,
                                                                       strict=True) if d],
                                            rec["truth"]) if different.any() else None
            cf = (accuracy(sets[i + 1]) - accuracy(d_set)) if d_set is not None and len(d_set) \
                else None
            row = {"id": rec["id"], "sentence": i, "type": typ, **res.to_json(),
                   "counterfactual_effect": cf}
            try:
                e = cf_plus_plus(sets[i + 1], res, rec["truth"], n_boot=config.n_boot,
                                 key=jax.random.fold_in(mk, 1000 * k + i))
                row["cf_plus_plus"] = list(e)
            except ValueError as err:
                row["cf_plus_plus"] = None
                row["cf_plus_plus_note"] = str(err)
            rows.append(row)
            if path.exists():  # add the scores to that CoT's browser view
                from llm_tools.thought_branches import CoTAnalysis

                a = CoTAnalysis.from_json(json.loads(path.read_text()))
                a.resilience[i] = res.to_json()
                atomic_write_json(path, a.to_json())
                write_html(workdir / "views" / spec.name / f"{rec['id']}.html", a)
    atomic_write_json(workdir / "resilience_rows.json", rows)
    if all_scores:
        fig = plot_resilience(all_scores, max_iterations=c.max_iterations, by_type=by_type)
        Workdir(workdir).save_figure(fig, "resilience.png")
    both = [r for r in rows if r["cf_plus_plus"] is not None and r["counterfactual_effect"]
            is not None]
    res = {"sentences": len(rows), "rollouts_per_sentence": c.rollouts,
           "max_iterations": c.max_iterations,
           "mean_score": float(np.mean(all_scores)) if all_scores else 0.0,
           "persistence_rate": float(np.mean([r["persistence_rate"] for r in rows]))
           if rows else 0.0,
           "mean_score_by_type": {t: float(np.mean(v)) for t, v in by_type.items()},
           "paired_cf": len(both)}
    if len(both) >= 2:
        d = np.array([abs(r["cf_plus_plus"][0]) - abs(r["counterfactual_effect"])
                      for r in both])
        res["cfpp_minus_cf_abs"] = list(bootstrap_mean(d, n_boot=config.n_boot,
                                                       key=jax.random.fold_in(mk, 7)))
        res["mean_abs_cfpp"] = float(np.mean([abs(r["cf_plus_plus"][0]) for r in both]))
        res["mean_abs_cf"] = float(np.mean([abs(r["counterfactual_effect"]) for r in both]))
    return {"resilience": res}


# -- entry -----------------------------------------------------------------------------------

def run(config, workdir) -> dict:
    """Runs the configured experiments; writes results.json and report.md; returns results."""
    exp = config.experiment
    if exp not in ("all", "importance", "interventions", "resilience"):
        raise ValueError(f"config.experiment must be all|importance|interventions|resilience, "
                         f"got {exp!r}")
    workdir = Path(workdir)
    wd = Workdir(workdir)
    t0 = time.time()
    key = jax.random.key(config.seed)
    specs, notes = load_models(config)
    if not specs:
        raise RuntimeError(f"thought_branches: no model can run here ({'; '.join(notes)})")
    embedder = load_embedder()
    results = {"notes": notes, "models": [s.name for s in specs]}
    if exp in ("all", "importance"):
        results.update(importance(config, workdir, specs, embedder, key))
    if exp in ("all", "interventions"):
        results.update(interventions(config, workdir, specs, embedder, key))
    if exp in ("all", "resilience"):
        results.update(resilience_experiment(config, workdir, specs, embedder, key))
    results["seconds"] = time.time() - t0
    wd.write_results(results)
    wd.write_report("# Thought Branches\n\n```json\n" + json.dumps(results, indent=1)[:20000]
                    + "\n```\n")
    return results
