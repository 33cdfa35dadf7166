"""AbstRaL: reinforcing abstract thinking for robust grade-school math (Gao et al., 2025).

Small LLMs lose accuracy on grade-school math when numbers or names change or an irrelevant
clause is added. AbstRaL teaches the model to *abstract* the problem instead: the question's
numbers become symbols ``in0, in1, ...`` (condition recognition), the model writes the
solution as equations over those symbols with symbolic intermediates ``out0, out1, ...``
(granular abstraction), and a symbolic tool computes the answer from the real values. The
abstraction is learned by supervised fine-tuning and then GRPO, rewarded for the tool's answer
and for symbolic faithfulness.

- Data: :func:`perturb` / :func:`make_problems` (GSM-Symbolic templates from
  :mod:`llm_tools.gsm_symbolic`: original, numbers, names, both, distractor),
  :func:`recognize_conditions`, :func:`abstract_problem` (granular abstractions from the
  templates' annotated solutions), :func:`make_task` (gold abstraction + probe points).
- The symbolic tool: :func:`parse_abstraction`, :func:`solve`, :func:`to_sympy` (whitelist
  parse, exact arithmetic, sympy built node by node; nothing is executed).
- Rewards: :func:`abstraction_reward` (answer, faithfulness, step similarity, format penalty),
  :func:`cot_reward`.
- GRPO: :func:`group_advantages`, :func:`grpo_loss` (clipped ratio with ``epsilon_low`` /
  ``epsilon_high``, k3 KL, ``grpo`` / ``bnpo`` / ``dr_grpo`` reductions), pure and jittable.

References:
  Gao, Bosselut, Bengio, Abbe, "AbstRaL: Augmenting LLMs' Reasoning by Reinforcing Abstract
  Thinking", arXiv:2506.07751, 2025.
"""

from llm_tools.abstral.abstraction import (
    Abstraction,
    AbstractionDataError,
    Step,
    abstract_problem,
)
from llm_tools.abstral.conditions import (
    NUMBER_WORDS,
    Conditions,
    recognize_conditions,
    to_fraction,
)
from llm_tools.abstral.grpo import REDUCTIONS, GRPOAux, group_advantages, grpo_loss, k3_kl
from llm_tools.abstral.perturb import (
    DISTRACTORS,
    VARIANTS,
    Problem,
    add_distractor,
    make_problems,
    perturb,
)
from llm_tools.abstral.rewards import (
    AbstractionTask,
    RewardConfig,
    Rewards,
    abstraction_reward,
    cot_reward,
    extract_final_number,
    make_task,
    symbolic_distance,
)
from llm_tools.abstral.symbolic import (
    AbstractionError,
    ParsedAbstraction,
    ToolResult,
    agree_on,
    evaluate_abstraction,
    parse_abstraction,
    solve,
    to_sympy,
)

__all__ = [
    "DISTRACTORS",
    "NUMBER_WORDS",
    "REDUCTIONS",
    "VARIANTS",
    "Abstraction",
    "AbstractionDataError",
    "AbstractionError",
    "AbstractionTask",
    "Conditions",
    "GRPOAux",
    "ParsedAbstraction",
    "Problem",
    "RewardConfig",
    "Rewards",
    "Step",
    "ToolResult",
    "abstract_problem",
    "abstraction_reward",
    "add_distractor",
    "agree_on",
    "cot_reward",
    "evaluate_abstraction",
    "extract_final_number",
    "group_advantages",
    "grpo_loss",
    "k3_kl",
    "make_problems",
    "make_task",
    "parse_abstraction",
    "perturb",
    "recognize_conditions",
    "solve",
    "symbolic_distance",
    "to_fraction",
    "to_sympy",
]
