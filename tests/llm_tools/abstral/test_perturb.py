"""Perturbation variants of the templates' original problems."""

import re

import jax
import pytest

from llm_tools.abstral import DISTRACTORS, VARIANTS, add_distractor, make_problems, perturb


def test_variants(templates):
    t = templates[17]  # Grandma's walk: names (name, unit) and numbers
    key = jax.random.key(0)
    orig = perturb(t, "original", key)
    assert orig.question == t.question and orig.final == 50
    nums = perturb(t, "numbers", key)
    assert all(nums.values[v] == t.defaults[v] for v in t.name_variables)
    assert any(nums.values[v] != t.defaults[v] for v in t.number_variables)
    assert t.satisfies(nums.values) and nums.question != t.question
    names = perturb(t, "names", key)
    assert all(names.values[v] == t.defaults[v] for v in t.number_variables)
    assert any(names.values[v] != t.defaults[v] for v in t.name_variables)
    assert names.final == orig.final
    both = perturb(t, "both", key)
    assert t.satisfies(both.values)
    dist = perturb(t, "distractor", key)
    assert dist.final == orig.final and dist.answer == orig.answer
    before = re.split(r"(?<=[.!?])\s+", orig.question)
    after = re.split(r"(?<=[.!?])\s+", dist.question)
    assert after[:-2] == before[:-1] and after[-1] == before[-1]  # inserted before the question
    assert after[-2] == dist.distractor and "Grandma" in dist.distractor or \
        not any("{name}" in d for d in DISTRACTORS if d.split()[0] == dist.distractor.split()[0])
    assert perturb(t, "numbers", key) == nums  # reproducible from the key


def test_names_on_a_template_without_names(templates):
    assert not templates[1].name_variables
    with pytest.raises(ValueError, match="template 1 has no name variables"):
        perturb(templates[1], "names", jax.random.key(0))


def test_make_problems_is_paired(templates):
    sets, skipped = make_problems(templates[:3], VARIANTS, jax.random.key(0), n_per_template=2)
    assert skipped == [1]
    for v in VARIANTS:
        assert [p.template_id for p in sets[v]] == [0, 0, 2, 2]
        assert all(p.variant == v for p in sets[v])
    # Originals of templates that violate their own conditions still perturb by names.
    sets, skipped = make_problems([templates[9]], ["names"], jax.random.key(1))
    assert skipped == [] and sets["names"][0].final == templates[9].final_answer(
        templates[9].defaults)


def test_bad_inputs(templates):
    t = templates[0]
    with pytest.raises(ValueError, match="perturb: variant must be one of"):
        perturb(t, "typos", jax.random.key(0))
    with pytest.raises(TypeError, match="perturb: template must be a Template"):
        perturb("t", "names", jax.random.key(0))
    with pytest.raises(ValueError, match="make_problems: variants must be a non-empty subset"):
        make_problems([t], ["x"], jax.random.key(0))
    with pytest.raises(ValueError, match="n_per_template must be a positive int"):
        make_problems([t], ["names"], jax.random.key(0), n_per_template=0)
    with pytest.raises(ValueError, match="add_distractor: names must be a non-empty list"):
        add_distractor(perturb(t, "original", jax.random.key(0)), jax.random.key(0), [])
