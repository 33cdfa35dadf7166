"""The data of the AbstRaL experiments: the template split, training problems and paired
evaluation sets, all drawn reproducibly from the config's seeds.

- Split: ``split_templates(held_out, seed=split_seed)`` (by template).
- Training problems (per training template): the original GSM8K problem and
  ``train_instances`` GSM-Symbolic draws (numbers and names together), each with its gold
  granular abstraction. SFT uses all of them; GRPO samples prompts from them (with probe
  points for the faithfulness reward). Distractors never appear in training.
- Evaluation (per template of each split): the original problem and ``eval_instances`` fresh
  draws of each perturbation (``numbers``, ``names``, ``distractor``), paired by template.
  On training templates the original was seen in training and the perturbed draws were not.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax

from llm_tools.abstral import (
    AbstractionTask,
    Problem,
    make_task,
    perturb,
)
from llm_tools.gsm_symbolic import Template, load_templates, split_templates

EVAL_VARIANTS = ("original", "numbers", "names", "distractor")


@dataclass(frozen=True)
class Datasets:
    templates: tuple[Template, ...]
    train_templates: tuple[Template, ...]
    held_templates: tuple[Template, ...]
    train_tasks: tuple[AbstractionTask, ...]
    eval_tasks: dict[str, tuple[AbstractionTask, ...]]  # split -> tasks (all variants)
    skipped: dict[str, tuple[int, ...]]


def _eval_tasks(templates, key, n_instances, n_probes) -> tuple[list[AbstractionTask], list]:
    tasks, skipped = [], []
    for t in templates:
        kt = jax.random.fold_in(key, t.id)
        rows: list[AbstractionTask] = []
        try:
            rows.append(make_task(t, perturb(t, "original", kt), jax.random.fold_in(kt, 99),
                                  n_probes=n_probes))
            for v_index, variant in enumerate(EVAL_VARIANTS[1:], start=1):
                for j in range(n_instances):
                    kj = jax.random.fold_in(jax.random.fold_in(kt, v_index), j)
                    p = perturb(t, variant, kj)
                    rows.append(make_task(t, p, jax.random.fold_in(kj, 1), n_probes=n_probes))
        except ValueError:  # e.g. no name variables: left out of every variant (paired sets)
            skipped.append(t.id)
            continue
        tasks.extend(rows)
    return tasks, skipped


def build_datasets(config) -> Datasets:
    """Everything the experiment trains and evaluates on (deterministic in the config)."""
    templates = load_templates()
    train_t, held_t = split_templates(templates, config.held_out, seed=config.split_seed)
    if config.max_templates:
        train_t = train_t[:config.max_templates]
        held_t = held_t[:max(1, config.max_templates // 2)]
    key = jax.random.key(config.data_seed)
    train_tasks = []
    for t in train_t:
        kt = jax.random.fold_in(jax.random.fold_in(key, 0), t.id)
        problems: list[Problem] = [perturb(t, "original", kt)]
        for j in range(config.train_instances):
            problems.append(perturb(t, "both", jax.random.fold_in(kt, j + 1)))
        for j, p in enumerate(problems):
            train_tasks.append(make_task(t, p, jax.random.fold_in(jax.random.fold_in(kt, 7), j),
                                         n_probes=config.grpo.n_probes))
    eval_tasks, skipped = {}, {}
    for split, ts, salt in (("train", train_t, 1), ("held_out", held_t, 2)):
        tasks, miss = _eval_tasks(ts, jax.random.fold_in(key, salt), config.eval_instances,
                                  config.eval_probes)
        eval_tasks[split] = tuple(tasks)
        skipped[split] = tuple(miss)
    return Datasets(templates, train_t, held_t, tuple(train_tasks), eval_tasks, skipped)


def tokenizer_corpus(data: Datasets, stdlib_files: int) -> list[str]:
    """Texts the task tokenizer is trained on: the training problems' questions, solutions,
    abstract questions and abstractions, and the first ``stdlib_files`` standard-library
    files (no held-out template text)."""
    from llm_tools.data import stdlib_files as files

    texts = []
    for task in data.train_tasks:
        texts += [task.problem.question, task.problem.answer, task.prompt,
                  task.gold.equations_text()]
    texts += [p.read_text(encoding="utf-8", errors="replace") for p in files()[:stdlib_files]]
    return texts
