"""JaxSampler and OpenAISampler (through `llm_tools.serve`) on SmolLM2's real tokenizer: the same
token ids and the same numbers, including a token straddling the prompt/continuation boundary,
the EOS/stop token kept with its logprob, and that logprob against a full forward pass."""

import threading

import jax
import numpy as np
import pytest

from llm_tools import JaxSampler
from llm_tools.client import OpenAISampler
from llm_tools.serve import OpenAIServer, make_server

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def backends(smollm2):
    local = JaxSampler(smollm2.model, smollm2.tokenizer, name="SmolLM2-135M-Instruct")
    srv = make_server(OpenAIServer(local))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    remote = OpenAISampler(f"http://127.0.0.1:{srv.server_address[1]}/v1",
                           "SmolLM2-135M-Instruct")
    yield local, remote
    srv.shutdown()
    srv.server_close()


def test_token_straddling_the_boundary_is_an_error_on_both(backends):
    local, remote = backends
    ids = local.tokenizer.encode("Hello world")
    assert len(ids) == 2  # "Hello", " world": "Hello wor" + "ld" cuts inside " world"
    for backend in (local, remote):
        with pytest.raises(ValueError, match="boundary .*inside token"):
            backend.logprobs(["Hello wor"], ["ld"])
    a, b = (s.logprobs(["Hello", "The capital of France"], [" world", " is Paris."])
            for s in (local, remote))
    for x, y in zip(a, b, strict=True):
        assert x.token_ids == y.token_ids and len(x.token_ids) > 0
        np.testing.assert_allclose(x.token_logprobs, y.token_logprobs, atol=1e-4)
    assert a[0].token_ids == (ids[1],)


def test_eos_kept_with_its_logprob_on_both(backends):
    local, remote = backends
    tok = local.tokenizer
    key = jax.random.key(0)
    want = local.chat(QUESTION, max_new_tokens=24, temperature=0.0, key=key)[0]
    got = remote.chat(QUESTION, max_new_tokens=24, temperature=0.0, key=key)[0]
    print(f"\nSmolLM2 greedy reply: {want.text!r}, ids {want.token_ids}")
    assert want.finish_reason == "stop" and want.ends_with_stop_token
    assert want.token_ids[-1] in tok.stop_ids
    assert tok.decode(want.token_ids[:-1]) == want.text
    assert (got.text, got.token_ids, got.finish_reason, got.ends_with_stop_token) == (
        want.text, want.token_ids, want.finish_reason, want.ends_with_stop_token)
    np.testing.assert_allclose(got.logprobs, want.logprobs, atol=1e-4)
    # the stop token's logprob is the model's own: score the reply ids after the prompt
    prompt_ids = tok.encode(tok.apply_chat_template(QUESTION, add_generation_prompt=True))
    for backend in (local, remote):
        score = backend.logprobs_ids([prompt_ids], [list(want.token_ids)])[0]
        assert score.token_ids == want.token_ids
        np.testing.assert_allclose(score.token_logprobs, want.logprobs, atol=1e-4)
    # sampled (T=0.8, top-p 0.9): the same ids and numbers through generate_ids
    key = jax.random.key(5)
    kw = dict(max_new_tokens=12, temperature=0.8, top_p=0.9, n=3, key=key)
    for w, g in zip(local.generate_ids([prompt_ids], **kw)[0],
                    remote.generate_ids([prompt_ids], **kw)[0], strict=True):
        assert g.token_ids == w.token_ids and g.ends_with_stop_token == w.ends_with_stop_token
        np.testing.assert_allclose(g.logprobs, w.logprobs, atol=1e-4)
