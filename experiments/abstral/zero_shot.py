"""Claim 1: the perturbation drop of a real small model, zero-shot.

SmolLM2-135M-Instruct answers each problem greedily through its chat template with the
GSM-Symbolic package's own instruction ("Solve the following math problem step by step. Put
your final numeric answer ... in \\boxed{}"). The answer is read leniently (``\\boxed{}``, then
"answer is", then the last number), since the model was never taught a format. Per template:
the original GSM8K problem and ``instances`` draws of each perturbation, paired by template.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax

from experiments.abstral.data import EVAL_VARIANTS
from experiments.abstral.stats import summarize
from experiments.config import check, in_range, one_of, positive
from experiments.progress import Progress
from experiments.workdir import Workdir
from llm_tools.abstral import extract_final_number, perturb, to_fraction
from llm_tools.gsm_symbolic import load_instruction, load_templates, split_templates


def problems(config) -> tuple[list, list[int]]:
    templates = load_templates()
    if config.split == "held_out":
        _, templates = split_templates(templates, config.held_out, seed=config.split_seed)
    if config.max_templates:
        templates = templates[:config.max_templates]
    key = jax.random.key(config.seed)
    out, skipped = [], []
    for t in templates:
        kt = jax.random.fold_in(key, t.id)
        try:
            rows = [perturb(t, "original", kt)]
            for v_index, variant in enumerate(EVAL_VARIANTS[1:], start=1):
                for j in range(config.instances):
                    rows.append(perturb(t, variant, jax.random.fold_in(
                        jax.random.fold_in(kt, v_index), j)))
        except ValueError:
            skipped.append(t.id)
            continue
        out += rows
    return out, skipped


def run(config, workdir) -> dict:
    check(config, {"held_out": in_range(0.05, 0.95), "instances": positive,
                   "max_new_tokens": positive, "batch_size": positive,
                   "split": one_of("held_out", "all")})
    from llm_tools import JaxSampler

    workdir = Path(workdir)
    wd = Workdir(workdir)
    probs, skipped = problems(config)
    answers_path = workdir / "answers.jsonl"
    done = []
    if answers_path.is_file():
        done = [json.loads(line) for line in answers_path.read_text().splitlines() if line]
    lm = JaxSampler.from_smollm2(max_seq_len=config.max_seq_len, max_batch=config.batch_size)
    instruction = load_instruction()
    progress = Progress(len(probs), name="abstral.zero_shot", start_step=len(done))
    for s in range(len(done), len(probs), config.batch_size):
        chunk = probs[s:s + config.batch_size]
        prompts = [lm.tokenizer.apply_chat_template(
            [{"role": "user", "content": f"{instruction}\n\n{p.question}"}]) for p in chunk]
        outs = lm.generate(prompts, max_new_tokens=config.max_new_tokens, temperature=0.0,
                           key=jax.random.fold_in(jax.random.key(config.seed), s))
        with answers_path.open("a") as f:  # one complete line per answer
            for p, group in zip(chunk, outs, strict=True):
                got = extract_final_number(group[0].text, lenient=True)
                rec = {"split": "held_out", "template_id": p.template_id,
                       "variant": p.variant, "correct": got is not None and
                       got == to_fraction(p.final), "faithful": None,
                       "parsed": got is not None, "answer": str(got), "final": str(p.final),
                       "text": group[0].text[-300:]}
                f.write(json.dumps(rec) + "\n")
                done.append(rec)
        progress.update(min(s + config.batch_size, len(probs)))
    stats = summarize({"smollm2": done}, variants=EVAL_VARIANTS, n_boot=config.bootstrap,
                      seed=config.seed)
    results = {"accuracy": stats["accuracy"].get("held_out", {}).get("smollm2", {}),
               "drop": stats["drop"].get("held_out", {}).get("smollm2"),
               "drop_by_variant": stats["drop_by_variant"].get("held_out", {}).get("smollm2"),
               "answered": stats["parsed"].get("held_out", {}).get("smollm2"),
               "templates": stats.get("templates_held_out", 0), "problems": len(done),
               "skipped_templates": skipped, "split": config.split}
    wd.write_results(results)
    plot = _plot(wd, results)
    wd.write_report(_report(results, plot))
    return results


def _plot(wd: Workdir, results: dict) -> str | None:
    if not results["accuracy"]:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    acc = results["accuracy"]
    fig, ax = plt.subplots(figsize=(4.6, 3.2))
    means = [acc[v]["mean"] for v in EVAL_VARIANTS]
    err = [[acc[v]["mean"] - acc[v]["lo"] for v in EVAL_VARIANTS],
           [acc[v]["hi"] - acc[v]["mean"] for v in EVAL_VARIANTS]]
    ax.bar(EVAL_VARIANTS, means, yerr=err, capsize=3, color="tab:gray")
    ax.set_ylabel("accuracy")
    ax.set_title("SmolLM2-135M-Instruct, zero-shot CoT", fontsize=10)
    fig.tight_layout()
    wd.save_figure(fig, "zero_shot.png")
    return "zero_shot.png"


def _report(results: dict, plot: str | None) -> str:
    acc = results["accuracy"]
    rows = "\n".join(f"| {v} | {acc[v]['mean']:.3f} [{acc[v]['lo']:.3f}, {acc[v]['hi']:.3f}] |"
                     for v in acc)
    drop = results["drop"]
    text = ("# SmolLM2-135M-Instruct zero-shot on GSM-Symbolic variants\n\n"
            f"{results['templates']} templates ({results['split']}), {results['problems']} "
            "problems, greedy chain of thought.\n\n| variant | accuracy [95% CI] |\n|---|---|\n"
            f"{rows}\n\n")
    if drop:
        text += (f"Drop (original - mean of perturbed): {drop['mean']:.3f} "
                 f"[{drop['lo']:.3f}, {drop['hi']:.3f}]\n\n")
    return text + (f"![zero-shot]({plot})\n" if plot else "")
