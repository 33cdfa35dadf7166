"""The temporary token-level adapter keeps the engine's key contract (until issue 11 lands)."""

import jax
import pytest
from flax import nnx

from experiments.thought_branches.compat import IdsAdapter, ids_sampler
from llm_tools import JaxSampler, Llama, tiny_config
from llm_tools.tokenizer import ByteTokenizer

from .conftest import FakeSampler


@pytest.mark.slow  # compiles the decoder (~10 s idle); the shim goes when issue 11 lands
def test_adapter_keeps_samples_when_prompts_or_n_grow():
    model = Llama(tiny_config(dim=16, n_layers=1, max_seq_len=64), rngs=nnx.Rngs(0))
    s = ids_sampler(JaxSampler(model, ByteTokenizer()))
    assert isinstance(s, IdsAdapter)
    kw = dict(max_new_tokens=6, temperature=1.0, key=jax.random.key(0))
    a = s.generate_ids([[65, 66]], n=2, **kw)
    b = s.generate_ids([[65, 66], [67]], n=3, **kw)
    assert [c.token_ids for c in b[0][:2]] == [c.token_ids for c in a[0]]
    r = s.resample_ids([65, 66], 2, **kw)
    assert [c.token_ids for c in r] == [c.token_ids for c in a[0]]
    for c in b[1]:
        assert len(c.logprobs) == len(c.token_ids)
        assert c.ends_with_stop_token == (c.token_ids[-1] == 257)
    fake = FakeSampler()
    assert ids_sampler(fake) is fake
