"""Generated problems (answers recomputed from the question), decision prompts, GSM-Symbolic
instances and the word tokenizer."""

import re

import jax
import pytest

from llm_tools.thought_branches import (
    WordTokenizer,
    decision_problems,
    extract_answer,
    format_prompt,
    generated_problems,
    gsm_symbolic_problems,
    sentence_type,
    split_sentences,
)


def _solve(q: str) -> int:
    """Each template's answer, recomputed from the question text alone."""
    n = [int(x) for x in re.findall(r"\d+", q)]
    if "bags with" in q:
        return n[0] * n[1] - n[2]
    if "change" in q:
        return n[2] - n[0] * n[1]
    if "pages a day" in q:
        return n[0] * n[1] + n[2]
    if "shares the rest" in q:
        return (n[0] - n[1]) // n[2]
    return (n[0] + n[1]) * n[2]


def test_generated_answers_and_solutions_agree_with_the_question():
    ps = generated_problems(60, key=jax.random.key(0), p_slip=0.3)
    assert len({p.id for p in ps}) == 60
    for p in ps:
        truth = _solve(p.question)
        assert truth >= 0 and p.answer == str(truth)
        assert extract_answer(p.solution, "numeric") == p.answer
        types = [sentence_type(s.text) for s in split_sentences(p.solution)]
        assert types[0] == "plan" and types[-1] == "answer" and "compute" in types
    assert any("Wait, that is not right." in p.solution for p in ps)
    again = generated_problems(60, key=jax.random.key(0), p_slip=0.3)
    assert again == ps


def test_decisions_are_balanced_and_correct():
    ps = decision_problems(40, key=jax.random.key(1))
    for p in ps:
        have, price, count = (int(x) for x in re.findall(r"\d+", p.question))
        assert p.answer == ("yes" if have >= price * count else "no")
        assert extract_answer(p.solution, "yes_no") == p.answer
    assert 10 <= sum(p.answer == "yes" for p in ps) <= 30


def test_gsm_symbolic_instances():
    from llm_tools.gsm_symbolic import find_gsm_symbolic

    if find_gsm_symbolic() is None:
        pytest.skip("GSM-Symbolic wheel not fetched (python -m llm_tools.fetch gsm_symbolic)")
    ps = gsm_symbolic_problems(3, key=jax.random.key(0), template_ids=[3, 5, 7])
    assert [p.id.split("-")[1] for p in ps] == ["3", "5", "7"]
    for p in ps:
        assert extract_answer(p.solution, "numeric") == p.answer and "<<" not in p.solution


def test_word_tokenizer_round_trips_and_falls_back_to_bytes():
    ps = generated_problems(50, key=jax.random.key(2))
    tok = WordTokenizer.train([format_prompt(p) + " " + p.solution for p in ps])
    for text in [format_prompt(ps[0]) + " " + ps[0].solution, "Überraschung!\t\n  x",
                 "But wait, is this really the right approach?"]:
        assert tok.decode(tok.encode(text)) == text
        assert b"".join(tok.token_bytes(i) for i in tok.encode(text)) == text.encode()
    ids = tok.encode(" 3 * 14 = 42.", add_bos=True)
    # BOS, " 3", " *", " 1", "4", " =", " 4", "2", "."
    assert ids[0] == tok.bos_id and len(ids) == 9
    assert tok.decode([tok.eos_id]) == ""


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="generated_problems: n must be a positive int, got 0"):
        generated_problems(0, key=jax.random.key(0))
    with pytest.raises(TypeError, match="generated_problems: key must be a typed key"):
        generated_problems(2, key=3)
    with pytest.raises(ValueError, match="p_slip must lie in"):
        generated_problems(2, key=jax.random.key(0), p_slip=2.0)
    with pytest.raises(ValueError, match="decision_problems: n must be a positive int"):
        decision_problems(-1, key=jax.random.key(0))
    with pytest.raises(ValueError, match="WordTokenizer: pieces must be single pre-tokens"):
        WordTokenizer(["two words"])
    tok = WordTokenizer([" apples"])
    with pytest.raises(ValueError, match=r"WordTokenizer.decode: ids must lie in \[0, 260\)"):
        tok.decode([999])
    with pytest.raises(TypeError, match="WordTokenizer.encode: text must be str"):
        tok.encode(None)
    tok.save(tmp_path / "v.json")
    assert WordTokenizer.load(tmp_path / "v.json").pieces == [" apples"]
