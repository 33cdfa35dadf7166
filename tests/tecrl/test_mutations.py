"""The mutation check (tests/tecrl/mutation_check.py): every listed mutation makes a test fail."""

import pytest

from tests.tecrl import mutation_check


def test_mutations_are_well_formed():
    """Each mutation's text occurs exactly once in the current source (cheap; default run)."""
    for m in mutation_check.MUTATIONS:
        src = (mutation_check.ROOT / "tecrl" / m.file).read_text()
        assert src.count(m.old) == 1, m.name
        assert m.tests, m.name


@pytest.mark.slow  # one pytest process per mutation: minutes
def test_every_mutation_is_caught():
    assert mutation_check.main([]) == 0
