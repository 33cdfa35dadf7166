"""Server throughput: ``clients`` concurrent HTTP clients vs one in-process ``generate`` call.

    python -m experiments.llm_tools.bench_server --workdir=/tmp/llm_tools_bench_server
    python -m experiments.llm_tools.bench_server --model=tiny --new_tokens=16 --workdir=/tmp/bs

``clients`` (16) distinct prompts of ``prompt_tokens`` (128) tokens, ``new_tokens`` (64) new
tokens each, at ``temperature`` (0 = greedy):

- in process: one ``JaxSampler.generate_ids`` call on all the prompts (one batch);
- server: ``llm_tools.serve`` in this process on a localhost port, the same sampler behind
  it, and ``clients`` threads that each send one ``/v1/completions`` request (one prompt) with
  ``http.client`` at the same moment; the wall time runs from the first send to the last
  answer. The server batches a burst (requests less than ``batch_window_ms`` apart, for at most
  ``max_wait_ms``) into one decode loop; the report says how many loops each round took.

Both are warmed up once (compilation), then alternated ``repeats`` times; medians are
reported, with the ratio of server to in-process throughput (generated tokens / wall time,
the stop token counted) and the 1-minute load average before each round (the machine may be
shared). Writes ``results.json`` and ``report.md`` into ``--workdir``.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import jax
import numpy as np
from absl import app, flags

from experiments.workdir import Workdir
from llm_tools import stdlib_corpus
from llm_tools.serve import OpenAIServer, ServerConfig, build_sampler, make_server


def _prompts(tokenizer, count, length):
    """``count`` distinct prompts of exactly ``length`` tokens cut from stdlib sources."""
    text = bytes(stdlib_corpus(max_bytes=200_000).train.clip(0, 255).astype(np.uint8)).decode(
        "utf-8", errors="ignore")
    ids = tokenizer.encode(text)
    stride = max(1, (len(ids) - length) // max(count, 1))
    out = [ids[i * stride: i * stride + length] for i in range(count)]
    if any(len(p) != length for p in out):
        raise ValueError(f"bench_server: the corpus is too short for {count} prompts of "
                         f"{length} tokens")
    return out


def _client_round(port, model, prompts, new_tokens, temperature):
    """All requests at once; returns (wall seconds, generated tokens)."""
    start = threading.Barrier(len(prompts) + 1)

    def one(i):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
        body = json.dumps({"model": model, "prompt": prompts[i], "max_tokens": new_tokens,
                           "temperature": temperature, "seed": i, "return_token_ids": True})
        start.wait()
        conn.request("POST", "/v1/completions", body=body,
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        out = json.loads(resp.read())
        conn.close()
        if resp.status != 200:
            raise RuntimeError(f"bench_server: HTTP {resp.status}: {out}")
        return len(out["choices"][0]["token_ids"])

    with ThreadPoolExecutor(len(prompts)) as pool:
        futs = [pool.submit(one, i) for i in range(len(prompts))]
        start.wait()
        t0 = time.perf_counter()
        counts = [f.result() for f in futs]
        wall = time.perf_counter() - t0
    return wall, sum(counts)


def run(model, clients, prompt_tokens, new_tokens, temperature, repeats, window_ms,
        max_wait_ms=250.0) -> dict:
    sampler = build_sampler(model, max_seq_len=prompt_tokens + new_tokens + 16,
                            max_batch=clients)
    prompts = _prompts(sampler.tokenizer, clients, prompt_tokens)
    server = OpenAIServer(sampler, config=ServerConfig(
        max_n=1, max_rows=clients, batch_window_s=window_ms / 1000,
        max_wait_s=max_wait_ms / 1000, max_queue=4 * clients))
    httpd = make_server(server)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    port = httpd.server_address[1]
    key = jax.random.key(0)

    def in_process():
        t0 = time.perf_counter()
        out = sampler.generate_ids(prompts, max_new_tokens=new_tokens, temperature=temperature,
                                   key=key)
        return time.perf_counter() - t0, sum(len(c[0].token_ids) for c in out)

    def over_http():
        before = server.batcher.batches
        wall, toks = _client_round(port, sampler.name, prompts, new_tokens, temperature)
        return wall, toks, server.batcher.batches - before

    try:
        in_process()  # warm-up: compile every shape both paths use
        over_http()
        rounds = []
        for r in range(repeats):
            load = os.getloadavg()[0]
            t_in, n_in = in_process()
            t_srv, n_srv, loops = over_http()
            rounds.append(dict(load_1min=load, in_process_s=t_in, in_process_tokens=n_in,
                               server_s=t_srv, server_tokens=n_srv, server_decode_loops=loops))
            print(f"round {r}: in-process {n_in / t_in:.1f} tok/s, server {n_srv / t_srv:.1f} "
                  f"tok/s ({loops} decode loops), load {load:.1f}", flush=True)
    finally:
        httpd.shutdown()
        httpd.server_close()
    tin = statistics.median(r["in_process_tokens"] / r["in_process_s"] for r in rounds)
    tsrv = statistics.median(r["server_tokens"] / r["server_s"] for r in rounds)
    return {"model": sampler.name, "clients": clients, "prompt_tokens": prompt_tokens,
            "new_tokens": new_tokens, "temperature": temperature, "batch_window_ms": window_ms,
            "max_wait_ms": max_wait_ms,
            "rounds": rounds, "in_process_tokens_per_s": tin, "server_tokens_per_s": tsrv,
            "server_over_in_process": tsrv / tin}


def define_flags():
    """The command-line flags, defined only when run as a script (not on import)."""
    global _MODEL, _CLIENTS, _PROMPT, _NEW, _TEMP, _REPEATS, _WINDOW, _WAIT, _WORKDIR
    _MODEL = flags.DEFINE_enum("model", "smollm2", ["smollm2", "tiny"], "Served model.")
    _CLIENTS = flags.DEFINE_integer("clients", 16, "Concurrent clients (= in-process batch).")
    _PROMPT = flags.DEFINE_integer("prompt_tokens", 128, "Prompt length in tokens.")
    _NEW = flags.DEFINE_integer("new_tokens", 64, "New tokens per request.")
    _TEMP = flags.DEFINE_float("temperature", 0.0, "Sampling temperature (0 = greedy).")
    _REPEATS = flags.DEFINE_integer("repeats", 3, "Timed rounds of each (median reported).")
    _WINDOW = flags.DEFINE_float("batch_window_ms", 20.0, "Server batching gap.")
    _WAIT = flags.DEFINE_float("max_wait_ms", 250.0, "Server batching cap after the first request.")
    _WORKDIR = flags.DEFINE_string("workdir", "/tmp/llm_tools_bench_server", "Output folder.")


def main(argv):
    del argv
    wd = Workdir(_WORKDIR.value)
    res = run(_MODEL.value, _CLIENTS.value, _PROMPT.value, _NEW.value, _TEMP.value,
              _REPEATS.value, _WINDOW.value, _WAIT.value)
    res["device"] = str(jax.devices()[0].device_kind)
    res["backend"] = jax.default_backend()
    wd.write_results(res)
    lines = ["# llm_tools server benchmark", "",
             f"Device: {res['device']} ({res['backend']}); {res['model']}, {res['clients']} "
             f"concurrent clients, {res['prompt_tokens']} prompt + {res['new_tokens']} new "
             f"tokens, temperature {res['temperature']}, batching "
             f"gap {res['batch_window_ms']} ms (at most {res['max_wait_ms']} ms).", "",
             "| round | load (1 min) | in-process tok/s | server tok/s | server / in-process | "
             "decode loops |", "|---|---|---|---|---|---|"]
    for i, r in enumerate(res["rounds"]):
        a = r["in_process_tokens"] / r["in_process_s"]
        b = r["server_tokens"] / r["server_s"]
        lines.append(f"| {i} | {r['load_1min']:.1f} | {a:.1f} | {b:.1f} | {b / a:.2f} | "
                     f"{r['server_decode_loops']} |")
    lines += ["", f"Median: in-process {res['in_process_tokens_per_s']:.1f} tok/s, server "
              f"{res['server_tokens_per_s']:.1f} tok/s, ratio "
              f"**{res['server_over_in_process']:.2f}**."]
    wd.write_report("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    define_flags()
    app.run(main)
