"""OpenAISampler / OpenAIEmbedder against `llm_tools.serve` on localhost (the tiny byte-level
model), against a replay of the official API's response shapes, and the server's HTTP contract
(streaming read with http.client, usage, logprobs counts, batching, errors)."""

import http.client
import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jax
import numpy as np
import pytest

from llm_tools.client import OpenAIEmbedder, OpenAISampler, ServerError, seed_from_key
from llm_tools.model import forward
from llm_tools.serve import OpenAIServer, ServerConfig, build_sampler, key_from_seed, make_server

TRANSCRIPT = json.loads((Path(__file__).parent / "data" / "openai_transcript.json").read_text())


def _start(app):
    srv = make_server(app)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}/v1"


@pytest.fixture(scope="module")
def tiny():
    """The tiny random byte-level model, served in process; the same object is the local side."""
    sampler = build_sampler("tiny")
    app = OpenAIServer(sampler, config=ServerConfig(max_n=8, batch_window_s=0.05))
    srv, url = _start(app)
    yield sampler, app, url
    srv.shutdown()
    srv.server_close()


def _post(url, path, body, *, raw=None):
    """A plain http.client POST; returns (status, headers, body bytes)."""
    host, port = url.split("//")[1].split("/")[0].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    data = raw if raw is not None else json.dumps(body).encode()
    conn.request("POST", "/v1" + path, body=data, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    out = resp.status, dict(resp.getheaders()), resp.read()
    conn.close()
    return out


def _json(url, path, body):
    status, _, data = _post(url, path, body)
    return status, json.loads(data)


def _sse(data: bytes):
    events = [e for e in data.decode().split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events), events[:3]
    assert events[-1] == "data: [DONE]"
    return [json.loads(e[len("data: "):]) for e in events[:-1]]


def _same(got, want):
    for g, w in zip(got, want, strict=True):
        assert (g.text, g.token_ids, g.finish_reason, g.ends_with_stop_token) == (
            w.text, w.token_ids, w.finish_reason, w.ends_with_stop_token)
        np.testing.assert_allclose(g.logprobs, w.logprobs, atol=1e-5)


# -- client against our server ----------------------------------------------------------------

def test_seed_round_trip_is_the_key():
    for s in [0, 1, 2**31 - 1, 2**32 - 1]:
        assert seed_from_key(jax.random.key(s)) == s
    for k in jax.random.split(jax.random.key(7), 4):
        back = key_from_seed(seed_from_key(k))
        np.testing.assert_array_equal(jax.random.key_data(back), jax.random.key_data(k))


def test_generate_ids_resample_match_in_process(tiny, tmp_path):
    local, app, url = tiny
    client = OpenAISampler(url, "tiny-random", cache_dir=tmp_path / "cache")
    key = jax.random.key(3)
    kw = dict(max_new_tokens=8, temperature=0.8, top_k=50)
    got = client.generate(["hello", "abc"], n=2, key=key, **kw)
    assert client.requests_sent == 1  # every prompt in one request
    want = local.generate(["hello", "abc"], n=2, key=key, **kw)
    for g, w in zip(got, want, strict=True):
        _same(g, w)
    sent = client.requests_sent  # cached: the same call sends nothing and returns the same
    assert client.generate(["hello", "abc"], n=2, key=key, **kw) == got
    assert client.requests_sent == sent
    ids = [[104, 105], [1, 2, 3, 4]]
    for g, w in zip(client.generate_ids(ids, n=3, key=key, **kw),
                    local.generate_ids(ids, n=3, key=key, **kw), strict=True):
        _same(g, w)
    _same(client.resample_ids([7, 8, 9], 4, key=key, **kw),
          local.resample_ids([7, 8, 9], 4, key=key, **kw))
    _same(client.resample("the", 2, key=key, **kw), local.resample("the", 2, key=key, **kw))
    with pytest.raises(ValueError, match=r"HTTP 400.*token ids outside \[0, 259\)"):
        client.generate_ids([[1, 300]], key=key, max_new_tokens=2)
    # id-level work through /tokenize and /detokenize
    assert client.encode("héllo") == local.tokenizer.encode("héllo")
    assert client.decode([104, 195, 169]) == "hé" and client.decode([]) == ""
    with pytest.raises(ValueError, match="HTTP 400.*'tokens'"):
        client.decode([999])


def test_logprobs_and_chat_match_in_process(tiny):
    local, _, url = tiny
    client = OpenAISampler(url, "tiny-random")
    for a, b in zip(client.logprobs(["ab", "hello "], ["cd", "world"]),
                    local.logprobs(["ab", "hello "], ["cd", "world"]), strict=True):
        assert a.token_ids == b.token_ids and len(a.token_ids) > 0
        np.testing.assert_allclose(a.token_logprobs, b.token_logprobs, atol=1e-5)
        assert a.total == pytest.approx(b.total, abs=1e-4)
    for a, b in zip(client.logprobs_ids([[1, 2, 3], [9]], [[4, 5], [6, 7, 8]]),
                    local.logprobs_ids([[1, 2, 3], [9]], [[4, 5], [6, 7, 8]]), strict=True):
        assert a.token_ids == b.token_ids
        np.testing.assert_allclose(a.token_logprobs, b.token_logprobs, atol=1e-5)
    msgs = [{"role": "user", "content": "hi"}]
    key = jax.random.key(9)
    _same(client.chat(msgs, max_new_tokens=6, temperature=1.0, n=2, key=key),
          local.chat(msgs, max_new_tokens=6, temperature=1.0, n=2, key=key))


def test_requests_arriving_together_are_batched_and_unchanged(tiny):
    local, app, url = tiny
    seeds = list(range(8))
    before = app.batcher.batches

    def one(s):
        return _json(url, "/completions", {"model": "tiny-random", "prompt": f"p{s}",
                                           "max_tokens": 4 + s % 3, "temperature": 0.5 + s / 10,
                                           "top_p": 0.9, "seed": s, "return_token_ids": True})

    with ThreadPoolExecutor(8) as pool:
        outs = list(pool.map(one, seeds))
    loops = app.batcher.batches - before
    assert loops < len(seeds), f"{len(seeds)} requests took {loops} decode loops"
    for s, (status, out) in zip(seeds, outs, strict=True):
        assert status == 200
        want = local.generate([f"p{s}"], max_new_tokens=4 + s % 3, temperature=0.5 + s / 10,
                              top_p=0.9, key=jax.random.key(s))[0][0]
        assert out["choices"][0]["token_ids"] == list(want.token_ids)


def test_missing_seed_is_fresh_randomness(tiny):
    _, _, url = tiny
    body = {"model": "tiny-random", "prompt": "x", "max_tokens": 12, "temperature": 1.0}
    a, b = _json(url, "/completions", body)[1], _json(url, "/completions", body)[1]
    assert a["choices"][0]["text"] != b["choices"][0]["text"]
    c, d = (_json(url, "/completions", {**body, "seed": 5})[1] for _ in range(2))
    assert c["choices"][0]["text"] == d["choices"][0]["text"]


def test_usage_logprob_counts_and_top_logprobs(tiny):
    local, _, url = tiny
    tok = local.tokenizer
    status, out = _json(url, "/completions", {
        "model": "tiny-random", "prompt": ["hello", "ab"], "max_tokens": 5, "n": 2, "seed": 1,
        "temperature": 0.7, "logprobs": 3, "echo": True, "return_token_ids": True})
    assert status == 200 and out["object"] == "text_completion"
    comp_tokens = sum(len(c["token_ids"]) for c in out["choices"])
    assert out["usage"] == {"prompt_tokens": 7, "completion_tokens": comp_tokens,
                            "total_tokens": 7 + comp_tokens}
    ch = out["choices"][1]  # prompt "hello", sample 1
    lp = ch["logprobs"]
    assert ch["text"].startswith("hello") and lp["tokens"][:5] == list("hello")
    assert lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None
    assert lp["text_offset"][:6] == [0, 1, 2, 3, 4, 5]
    ids = ch["prompt_token_ids"] + ch["token_ids"]
    # an independent top-k: full log-softmax of the logits, at temperature 1 for the prompt
    # tokens and 0.7 for the sampled ones
    logits = np.asarray(forward(local.model, np.asarray([ids]))[0][0], np.float64)
    for t in range(1, len(ids)):
        tau = 1.0 if t < 5 else 0.7
        z = logits[t - 1] / tau
        ref = z - z.max() - np.log(np.exp(z - z.max()).sum())
        top = np.argsort(-ref)[:3]
        got = lp["top_logprobs"][t]
        assert len(got) <= 4  # the sampled token is added when it is not in the top 3
        for i in top:
            if i < 128:  # bytes >= 128 all decode to U+FFFD and share one key
                assert got[tok.decode([int(i)])] == pytest.approx(ref[i], abs=1e-4)
        assert lp["token_logprobs"][t] == pytest.approx(ref[ids[t]], abs=1e-4)
    # chat: top_logprobs entries per token, with bytes
    status, out = _json(url, "/chat/completions", {
        "model": "tiny-random", "messages": [{"role": "user", "content": "hi"}], "seed": 2,
        "max_tokens": 4, "logprobs": True, "top_logprobs": 2})
    assert status == 200 and out["object"] == "chat.completion"
    content = out["choices"][0]["logprobs"]["content"]
    assert len(content) == out["usage"]["completion_tokens"] == 4
    assert all(len(c["top_logprobs"]) == 2 and isinstance(c["bytes"], list) for c in content)


def test_chat_max_tokens_defaults_to_the_rest_of_the_context(tiny):
    local, _, url = tiny
    status, out = _json(url, "/chat/completions", {
        "model": "tiny-random", "messages": [{"role": "user", "content": "hi"}], "seed": 4,
        "temperature": 0.0})
    assert status == 200
    u, c = out["usage"], out["choices"][0]
    limit = local.model.config.max_seq_len
    assert c["finish_reason"] == "stop" or u["prompt_tokens"] + u["completion_tokens"] == limit
    assert u["completion_tokens"] > 16  # not the old default of 16


def test_streaming_over_plain_http(tiny):
    _, _, url = tiny
    body = {"model": "tiny-random", "prompt": ["hello", "abc"], "max_tokens": 6, "n": 2,
            "seed": 11, "logprobs": 1, "return_token_ids": True}
    _, full = _json(url, "/completions", body)
    status, headers, data = _post(url, "/completions", {
        **body, "stream": True, "stream_options": {"include_usage": True}})
    assert status == 200 and headers["Content-Type"] == "text/event-stream"
    chunks = _sse(data)
    assert all(c["object"] == "text_completion" and c["id"] == chunks[0]["id"] for c in chunks)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == full["usage"]
    for want in full["choices"]:
        mine = [c["choices"][0] for c in chunks[:-1] if c["choices"][0]["index"] == want["index"]]
        assert "".join(c["text"] for c in mine) == want["text"]
        assert [c["logprobs"]["token_logprobs"][0] for c in mine[:-1]] == \
            want["logprobs"]["token_logprobs"]
        assert mine[-1]["finish_reason"] == want["finish_reason"]
        assert mine[-1]["token_ids"] == want["token_ids"]
        assert all(c["finish_reason"] is None for c in mine[:-1])
    # chat: the role first, then content deltas, then the finish reason
    cbody = {"model": "tiny-random", "messages": [{"role": "user", "content": "hey"}],
             "max_tokens": 5, "seed": 3}
    _, cfull = _json(url, "/chat/completions", cbody)
    status, headers, data = _post(url, "/chat/completions", {**cbody, "stream": True})
    chunks = _sse(data)
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == cfull["choices"][0]["message"]["content"]
    assert chunks[-1]["choices"][0]["finish_reason"] == cfull["choices"][0]["finish_reason"]
    assert "usage" not in chunks[-1]


def test_models_and_cli_server():
    proc = subprocess.Popen([sys.executable, "-m", "llm_tools.serve", "--model", "tiny",
                             "--embedder", "none", "--port", "0", "--max-n", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        if not line.startswith("listening on "):
            proc.kill()
            pytest.fail(f"server did not start: {line!r} {proc.stderr.read()[-2000:]}")
        base = line.split()[-1]
        host, port = base.split("//")[1].split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        conn.request("GET", "/v1/models")
        models = json.loads(conn.getresponse().read())
        assert [m["id"] for m in models["data"]] == ["tiny-random"]
        assert models["data"][0]["object"] == "model"
        conn.request("GET", "/v1/models/tiny-random")
        assert json.loads(conn.getresponse().read())["id"] == "tiny-random"
        status, out = _json(base + "/v1", "/completions", {"model": "tiny-random",
                                                           "prompt": "a", "n": 3})
        assert status == 400 and "above this server's limit of 2" in out["error"]["message"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# -- bad requests -----------------------------------------------------------------------------

@pytest.mark.parametrize("path,body,status,etype,pattern", [
    ("/completions", {"model": "gpt-9", "prompt": "a"}, 404, "not_found_error",
     "The model 'gpt-9' does not exist"),
    ("/completions", {"prompt": "a"}, 400, "invalid_request_error",
     "Missing required parameter: 'model'"),
    ("/completions", {"model": "tiny-random", "prompt": "a", "foo": 1, "best_off": 2}, 400,
     "invalid_request_error", "Unrecognized request argument\\(s\\) supplied: best_off, foo"),
    ("/completions", {"model": "tiny-random", "prompt": "a", "n": 9}, 400,
     "invalid_request_error", "'n': 9 is above this server's limit of 8"),
    ("/completions", {"model": "tiny-random", "prompt": "a", "max_tokens": "5"}, 400,
     "invalid_request_error", "Invalid type for 'max_tokens'"),
    ("/completions", {"model": "tiny-random", "prompt": "x" * 300, "max_tokens": 8}, 400,
     "invalid_request_error", "maximum context length is 256"),
    ("/completions", {"model": "tiny-random", "prompt": [[1, 999]]}, 400,
     "invalid_request_error", "token ids outside"),
    ("/completions", {"model": "tiny-random", "prompt": "a", "stream_options": {}}, 400,
     "invalid_request_error", "only allowed when 'stream' is true"),
    ("/completions", {"model": "tiny-random", "prompt": "a", "presence_penalty": 0.5}, 400,
     "invalid_request_error", "only 0 is supported"),
    ("/completions", {"model": "tiny-random", "prompt": "a", "top_p": 0}, 400,
     "invalid_request_error", "'top_p': must lie in \\(0, 1\\]"),
    ("/completions", {"model": "tiny-random", "prompt": "a", "logprobs": 21}, 400,
     "invalid_request_error", "outside \\[0, 20\\]"),
    ("/chat/completions", {"model": "tiny-random", "messages": [{"role": "user",
                                                                 "content": "a"}],
                           "top_logprobs": 2}, 400, "invalid_request_error",
     "'top_logprobs' requires 'logprobs'"),
    ("/chat/completions", {"model": "tiny-random", "messages": []}, 400,
     "invalid_request_error", "expected a non-empty list"),
    ("/embeddings", {"model": "tiny-random", "input": "a"}, 404, "not_found_error",
     "no embedding model"),
    ("/nowhere", {}, 404, "not_found_error", "Unknown route"),
])
def test_bad_requests_get_openai_errors(tiny, path, body, status, etype, pattern):
    import re

    _, _, url = tiny
    got_status, out = _json(url, path, body)
    assert got_status == status, out
    err = out["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == etype and re.search(pattern, err["message"]), err


def test_not_json_too_big_server_error_and_full_queue(tiny, monkeypatch):
    local, _, url = tiny
    status, _, data = _post(url, "/completions", None, raw=b"{nope")
    assert status == 400 and "not valid JSON" in json.loads(data)["error"]["message"]
    small = OpenAIServer(local, config=ServerConfig(max_queue=1, max_body_bytes=100))
    srv, surl = _start(small)
    try:
        status, _, data = _post(surl, "/completions", {"model": "tiny-random",
                                                       "prompt": "x" * 200})
        assert status == 413 and json.loads(data)["error"]["type"] == "invalid_request_error"
        # a failing model answers 500 server_error and the server keeps serving
        monkeypatch.setattr(small.sampler.tokenizer.__class__, "stop_ids",
                            property(lambda self: 1 / 0))
        status, out = _json(surl, "/completions", {"model": "tiny-random", "prompt": "a"})
        assert status == 500 and out["error"]["type"] == "server_error"
        monkeypatch.undo()
        # hold the worker, fill the one-slot queue, and the next request gets 503
        gate = threading.Event()
        run = small.batcher._run
        monkeypatch.setattr(small.batcher, "_run", lambda jobs: (gate.wait(30), run(jobs)))
        body = {"model": "tiny-random", "prompt": "a", "max_tokens": 2, "seed": 0}
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(_json, surl, "/completions", body)
            time.sleep(0.5)
            second = pool.submit(_json, surl, "/completions", body)
            time.sleep(0.5)
            status, out = _json(surl, "/completions", body)
            assert status == 503 and out["error"]["type"] == "service_unavailable_error"
            gate.set()
            assert first.result()[0] == second.result()[0] == 200
    finally:
        srv.shutdown()
        srv.server_close()


def test_bad_constructor_arguments(tiny):
    local, _, _ = tiny
    with pytest.raises(ValueError, match="ServerConfig: max_n must be a positive int"):
        ServerConfig(max_n=0)
    with pytest.raises(ValueError, match="batch_window_s must be a float >= 0"):
        ServerConfig(batch_window_s=-1)
    with pytest.raises(TypeError, match="sampler must be a JaxSampler"):
        OpenAIServer("model")
    with pytest.raises(TypeError, match="embedder must implement Embedder"):
        OpenAIServer(local, embedder=object())
    with pytest.raises(TypeError, match="key_from_seed: seed must be an int"):
        key_from_seed(1.5)
    with pytest.raises(ValueError, match="--model must be smollm2, tiny or ckpt"):
        build_sampler("gpt2")


# -- the client against the official API's shapes, and transport behaviour ----------------------

class _Replay:
    """A localhost server answering from a script of (status, body) pairs; records requests."""

    def __init__(self, script):
        self.script, self.requests = list(script), []
        fake = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                fake.requests.append((self.path, json.loads(raw)))
                status, body = fake.script[min(len(fake.requests) - 1, len(fake.script) - 1)]
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_client_reads_the_official_response_shapes():
    key = jax.random.key(0)
    with _Replay([(429, TRANSCRIPT["error_rate_limit"]), (200, TRANSCRIPT["completions"])]) as f:
        out = OpenAISampler(f.url, "gpt-3.5-turbo-instruct", backoff=0.01).generate(
            ["Say this is a test", "Is it?"], max_new_tokens=7, temperature=0.0, key=key)
        assert len(f.requests) == 2  # retried after 429
        path, sent = f.requests[-1]
        assert path == "/v1/completions"
        assert sent["prompt"] == ["Say this is a test", "Is it?"] and sent["max_tokens"] == 7
        assert sent["seed"] == seed_from_key(key) and sent["model"] == "gpt-3.5-turbo-instruct"
    want = TRANSCRIPT["completions"]["choices"]
    assert [c.text for c in (out[0][0], out[1][0])] == [w["text"] for w in want]
    assert out[1][0].finish_reason == "stop" and out[0][0].finish_reason == "length"
    assert out[0][0].logprobs == tuple(want[0]["logprobs"]["token_logprobs"])
    assert out[0][0].token_ids == ()  # the official API returns no token ids
    with _Replay([(200, TRANSCRIPT["chat"])]) as f:
        reply = OpenAISampler(f.url, "gpt-4o-mini").chat(
            [{"role": "user", "content": "Hello"}], max_new_tokens=20, key=key)
        assert f.requests[0][0] == "/v1/chat/completions"
        assert f.requests[0][1]["messages"] == [{"role": "user", "content": "Hello"}]
    assert reply[0].text == "Hello! How can I help?"
    assert reply[0].logprobs == tuple(c["logprob"] for c in
                                      TRANSCRIPT["chat"]["choices"][0]["logprobs"]["content"])
    with _Replay([(200, TRANSCRIPT["embeddings"])]) as f:
        emb = OpenAIEmbedder(f.url, "text-embedding-3-small")
        vecs = emb.embed(["a", "b"])
        assert f.requests[0][1]["input"] == ["a", "b"]
    raw = np.asarray(TRANSCRIPT["embeddings"]["data"][1]["embedding"])
    np.testing.assert_allclose(vecs[0], raw / np.linalg.norm(raw), rtol=1e-6)  # sorted by index
    np.testing.assert_allclose(vecs[1], [0.0, 0.6, 0.8], rtol=1e-6)
    with _Replay([(404, TRANSCRIPT["error_model_not_found"])]) as f:
        with pytest.raises(ValueError, match=r"rejected the request \(HTTP 404\).*gpt-9"):
            OpenAISampler(f.url, "gpt-9").generate(["a"], max_new_tokens=2, key=key)
    with _Replay([(200, TRANSCRIPT["completions"])]) as f:  # no prompt_token_ids: no scores
        with pytest.raises(ValueError, match="returned no prompt_token_ids"):
            OpenAISampler(f.url, "m").logprobs(["a", "b"], ["c", "d"])


def test_malformed_responses_and_unreachable_server():
    key = jax.random.key(0)
    for body, pattern in [("<html>oops", "not JSON"), ({"choices": []}, "expected 1 choices"),
                          ({"choices": [{"index": 0, "text": None}]}, "choice text is None"),
                          ([1, 2], "expected a JSON object")]:
        with _Replay([(200, body)]) as f:
            with pytest.raises(ValueError, match=f"malformed response from {f.url}.*{pattern}"):
                OpenAISampler(f.url, "m").generate(["a"], max_new_tokens=2, key=key)
    with _Replay([(200, {"data": [{"index": 0}]})]) as f:
        with pytest.raises(ValueError, match="malformed response.*bad embedding"):
            OpenAIEmbedder(f.url, "m").embed(["a"])
    with _Replay([(200, {"data": [{"index": 0, "embedding": [0.0, 0.0]}]})]) as f:
        with pytest.raises(ValueError, match="zero embedding"):
            OpenAIEmbedder(f.url, "m").embed(["a"])
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    client = OpenAISampler(url, "m", max_retries=2, backoff=0.01, timeout=2)
    with pytest.raises(ServerError, match=f"{url}/completions failed after 3 attempts"):
        client.generate(["a"], max_new_tokens=2, key=key)
    assert client.requests_sent == 3


def test_bad_client_arguments():
    with pytest.raises(ValueError, match="OpenAISampler: base_url must start with http"):
        OpenAISampler("localhost:8000", "m")
    with pytest.raises(ValueError, match="max_concurrency must be a positive int"):
        OpenAISampler("http://127.0.0.1:1/v1", "m", max_concurrency=0)
    with pytest.raises(ValueError, match="OpenAIEmbedder: dim must be a positive int"):
        OpenAIEmbedder("http://127.0.0.1:1/v1", "m", dim=0)
    with pytest.raises(ValueError, match="OpenAIEmbedder: model must be a non-empty str"):
        OpenAIEmbedder("http://127.0.0.1:1/v1", "")
    client = OpenAISampler("http://127.0.0.1:1/v1", "m")
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="prompts must be a non-empty list"):
        client.generate([], max_new_tokens=2, key=key)
    with pytest.raises(ValueError, match="max_new_tokens must be a positive int"):
        client.generate(["a"], max_new_tokens=-1, key=key)
    with pytest.raises(ValueError, match=r"top_p must lie in \(0, 1\]"):
        client.generate(["a"], max_new_tokens=2, top_p=0, key=key)
    with pytest.raises(ValueError, match="temperature must be a finite float >= 0"):
        client.chat([{"role": "user", "content": "x"}], max_new_tokens=2, temperature=-2,
                    key=key)
    with pytest.raises(ValueError, match=r"generate_ids: prompt_ids\[1\] must be a non-empty"):
        client.generate_ids([[1], []], max_new_tokens=2, key=key)
    with pytest.raises(ValueError, match="logprobs_ids: prompt_ids has 1 entries but "
                                         "continuation_ids has 2"):
        client.logprobs_ids([[1]], [[2], [3]])
    with pytest.raises(ValueError, match="logprobs: continuations.*empty string"):
        client.logprobs(["a"], [""])
    with pytest.raises(TypeError, match="resample_ids: prefix_ids must be a list of token ids"):
        client.resample_ids("abc", 2, max_new_tokens=2, key=key)
    with pytest.raises(TypeError, match="OpenAIEmbedder.embed: texts must be a list of str"):
        OpenAIEmbedder("http://127.0.0.1:1/v1", "m").embed("a")
    with pytest.raises(TypeError, match="seed_from_key: key must be a single typed key"):
        seed_from_key(0)
    with pytest.raises(TypeError, match=r"seed_from_key: key must be a single typed key.*\(2,\)"):
        seed_from_key(jax.random.split(jax.random.key(0), 2))


def test_embeddings_served_by_minilm(tiny):
    import base64

    from llm_tools.embedder import MiniLMEmbedder
    from llm_tools.fetch import find_minilm

    if find_minilm() is None:
        pytest.skip("all-MiniLM-L6-v2 not fetched; run `python -m llm_tools.fetch minilm`")
    local, _, _ = tiny
    minilm = MiniLMEmbedder.from_pretrained()
    srv, url = _start(OpenAIServer(local, embedder=minilm))
    try:
        texts = ["A man plays a guitar.", "Someone is playing music.", "Stocks fell."]
        remote = OpenAIEmbedder(url, "all-MiniLM-L6-v2")
        got = remote.embed(texts)
        np.testing.assert_allclose(got, minilm.embed(texts), atol=1e-6)
        assert remote.dim == 384 and remote.requests_sent == 1
        status, out = _json(url, "/embeddings", {"model": "all-MiniLM-L6-v2", "input": texts,
                                                 "encoding_format": "base64"})
        assert status == 200
        dec = [np.frombuffer(base64.b64decode(d["embedding"]), "<f4") for d in out["data"]]
        np.testing.assert_allclose(np.stack(dec), got, atol=1e-6)
        ntok = sum(len(x) for x in minilm.tokenize(texts))
        assert out["usage"] == {"prompt_tokens": ntok, "total_tokens": ntok}
        for body, pattern in [({"input": [[1, 2]]}, "token-id input is not supported"),
                              ({"input": "a", "dimensions": 64}, "only the model's dimension"),
                              ({"input": []}, "non-empty list")]:
            status, out = _json(url, "/embeddings", {"model": "all-MiniLM-L6-v2", **body})
            assert status == 400 and pattern in out["error"]["message"], out
        status, out = _json(url, "/completions", {"model": "all-MiniLM-L6-v2", "prompt": "a"})
        assert status == 400 and "embedding model" in out["error"]["message"]
    finally:
        srv.shutdown()
        srv.server_close()
