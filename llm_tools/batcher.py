"""Burst batching for ``llm_tools.serve``: rows of requests that arrive together are sampled
in one decode loop.

Request threads queue their rows (prompt ids, key, budget, temperature, top-p, top-k); one
worker takes a burst (requests arriving less than ``batch_window_s`` apart, for at most
``max_wait_s`` after the first, up to ``max_rows`` rows) and samples it with one
:func:`~llm_tools.engine.generate_tokens` call on the sampler's engine. Each row carries its
own key and parameters, so a request returns the same tokens alone or batched. The queue is
bounded; a full queue is answered 503.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import queue
import threading
import time

import jax
import jax.numpy as jnp

from llm_tools.engine import generate_tokens
from llm_tools.openai_schema import APIError, ServerConfig
from llm_tools.sampler import JaxSampler

__all__ = ["Batcher", "Row"]

@dataclasses.dataclass
class Row:
    """One row to sample: a prompt's ids, its key (``fold_in(fold_in(key, i), j)``) and its
    parameters."""

    prompt: list[int]
    key: jax.Array
    max_new: int
    temperature: float
    top_p: float
    top_k: int


class Batcher:
    """One worker thread sampling the rows of requests that arrive together."""

    def __init__(self, sampler: JaxSampler, config: ServerConfig):
        self.sampler, self.config = sampler, config
        self.queue: queue.Queue = queue.Queue(maxsize=config.max_queue)
        self.batches = 0  # decode loops run (for tests and the benchmark)
        self._thread = threading.Thread(target=self._loop, name="llm_tools-batcher", daemon=True)
        self._thread.start()

    def submit(self, rows: list[Row]) -> concurrent.futures.Future:
        """Queues one request's rows; the future gets ``[(ids, logprobs, stopped)]`` per row.

        Raises:
          APIError: 503 when ``max_queue`` requests are already waiting.
        """
        fut: concurrent.futures.Future = concurrent.futures.Future()
        try:
            self.queue.put_nowait((rows, fut))
        except queue.Full:
            raise APIError(503, f"The server is overloaded: {self.config.max_queue} requests "
                                "are already waiting (--max-queue); retry later",
                           code="server_is_overloaded") from None
        return fut

    def _loop(self):
        while True:
            jobs = [self.queue.get()]
            nrows = len(jobs[0][0])
            cap = time.monotonic() + self.config.max_wait_s
            while nrows < self.config.max_rows:
                left = min(self.config.batch_window_s, cap - time.monotonic())
                try:
                    job = self.queue.get(timeout=left) if left > 0 else self.queue.get_nowait()
                except queue.Empty:
                    break
                jobs.append(job)
                nrows += len(job[0])
            self._run(jobs)

    def _run(self, jobs):
        rows = [r for rs, _ in jobs for r in rs]
        try:
            results = []
            for s in range(0, len(rows), self.config.max_rows):
                chunk = rows[s:s + self.config.max_rows]
                tok = self.sampler.tokenizer
                out = generate_tokens(  # the sampler's engine: shared prefixes, its weights
                    self.sampler.engine, [r.prompt for r in chunk],
                    jnp.stack([r.key for r in chunk]),
                    max_new_tokens=[r.max_new for r in chunk],
                    temperature=[r.temperature for r in chunk], top_p=[r.top_p for r in chunk],
                    top_k=[r.top_k for r in chunk], stop_ids=tok.stop_ids,
                    pad_id=tok.pad_id or 0)
                self.batches += 1
                results += [(out.tokens[b, :out.lengths[b]], out.logprobs[b, :out.lengths[b]],
                             bool(out.stopped[b])) for b in range(len(chunk))]
        except Exception as e:  # noqa: BLE001 - every waiting request gets the error
            for _, fut in jobs:
                fut.set_exception(e)
            return
        i = 0
        for rs, fut in jobs:
            fut.set_result(results[i:i + len(rs)])
            i += len(rs)
