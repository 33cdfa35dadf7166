"""Token-level Sampler methods for a JaxSampler that predates them (temporary shim).

The engine branch (issue 11) adds ``generate_ids`` / ``resample_ids`` with prefix sharing to
``JaxSampler``; until it is merged, this adapter provides the same contract (sample ``j`` of
prompt ``i`` from ``fold_in(fold_in(key, i), j)``; the stop token kept with its logprob) by
calling the existing batched decoder on repeated rows, without prefix sharing.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class _Completion:
    text: str
    token_ids: tuple
    logprobs: tuple
    finish_reason: str
    ends_with_stop_token: bool


class IdsAdapter:
    """Wraps an old ``JaxSampler`` with ``generate_ids`` / ``resample_ids``."""

    def __init__(self, sampler):
        self._s = sampler
        self.tokenizer, self.name, self.model = sampler.tokenizer, sampler.name, sampler.model
        self.add_bos = sampler.add_bos

    def generate_ids(self, prompt_ids, *, max_new_tokens, temperature=1.0, top_p=1.0, top_k=0,
                     stop=(), n=1, key):
        rows = [list(map(int, p)) for p in prompt_ids for _ in range(n)]
        keys = jnp.stack([jax.random.fold_in(jax.random.fold_in(key, i), j)
                          for i in range(len(prompt_ids)) for j in range(n)])
        raw = self._s._generate_ids(rows, keys, max_new_tokens=max_new_tokens,
                                    temperature=temperature, top_p=top_p, top_k=top_k)
        tok = self.tokenizer
        out = []
        for tokens, logprobs, length, stopped in raw:
            ids = tuple(int(t) for t in tokens[:length])
            lps = tuple(float(x) for x in logprobs[:length])
            text = tok.decode(ids[:-1] if stopped else ids)
            out.append(_Completion(text, ids, lps, "stop" if stopped else "length", stopped))
        return [out[i * n:(i + 1) * n] for i in range(len(prompt_ids))]

    def resample_ids(self, prefix_ids, n, **kwargs):
        return self.generate_ids([prefix_ids], n=n, **kwargs)[0]

    def generate(self, *a, **k):
        return self._s.generate(*a, **k)


def ids_sampler(sampler):
    """``sampler`` itself when it has the token-level API, else the adapter."""
    if hasattr(sampler, "resample_ids") and hasattr(sampler, "generate_ids"):
        return sampler
    return IdsAdapter(sampler)
