"""OpenAISampler against `python -m llm_tools.serve` on localhost, and against fake servers."""

import json
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jax
import numpy as np
import pytest
from flax import nnx

from llm_tools import ByteTokenizer, JaxSampler, Llama
from llm_tools.client import OpenAISampler, ServerError, seed_from_key
from llm_tools.tiny import tiny_config


@pytest.fixture(scope="module")
def server():
    proc = subprocess.Popen([sys.executable, "-m", "llm_tools.serve", "--model", "tiny",
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        line = proc.stdout.readline()
        if not line.startswith("listening on "):
            proc.kill()
            pytest.fail(f"server did not start: {line!r} {proc.stderr.read()[-2000:]}")
        yield line.split()[-1] + "/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def local():
    """The same model in process (serve's `tiny` is Llama(tiny_config(), Rngs(0)))."""
    return JaxSampler(Llama(tiny_config(), rngs=nnx.Rngs(0)), ByteTokenizer())


def test_generate_matches_in_process_model(server, local, tmp_path):
    client = OpenAISampler(server, "tiny-random", cache_dir=tmp_path / "cache")
    key = jax.random.key(3)
    got = client.generate(["hello", "abc"], max_new_tokens=8, temperature=0.8, top_k=50, n=2,
                          key=key)
    for i, (prompt, k) in enumerate(zip(["hello", "abc"], jax.random.split(key, 2),
                                        strict=True)):
        server_key = jax.random.split(jax.random.key(seed_from_key(k)), 1)[0]
        want = local.generate([prompt], max_new_tokens=8, temperature=0.8, top_k=50, n=2,
                              key=server_key)[0]
        assert [c.text for c in got[i]] == [c.text for c in want]
        assert [c.token_ids for c in got[i]] == [c.token_ids for c in want]
        np.testing.assert_allclose([c.logprobs for c in got[i]], [c.logprobs for c in want],
                                   atol=1e-5)
    # cached: the same call sends nothing and returns the same
    sent = client.requests_sent
    assert client.generate(["hello", "abc"], max_new_tokens=8, temperature=0.8, top_k=50, n=2,
                           key=key) == got
    assert client.requests_sent == sent


def test_logprobs_embed_chat_match(server, local):
    client = OpenAISampler(server, "tiny-random")
    s_remote = client.logprobs(["ab", "hello "], ["cd", "world"])
    s_local = local.logprobs(["ab", "hello "], ["cd", "world"])
    for a, b in zip(s_remote, s_local, strict=True):
        np.testing.assert_allclose(a.token_logprobs, b.token_logprobs, atol=1e-5)
    np.testing.assert_allclose(client.embed(["x y", "z"]), local.embed(["x y", "z"]), atol=1e-5)
    msgs = [{"role": "user", "content": "hi"}]
    key = jax.random.key(9)
    remote = client.chat(msgs, max_new_tokens=6, temperature=1.0, n=2, key=key)
    want = local.chat(msgs, max_new_tokens=6, temperature=1.0, n=2,
                      key=jax.random.key(seed_from_key(key)))
    assert [c.text for c in remote] == [c.text for c in want]


def test_server_rejects_bad_requests(server):
    client = OpenAISampler(server, "tiny-random", max_retries=0)
    with pytest.raises(ValueError, match=r"rejected the request \(HTTP 400\).*context length"):
        client.generate(["x" * 300], max_new_tokens=8, key=jax.random.key(0))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_down_names_the_url():
    url = f"http://127.0.0.1:{_free_port()}/v1"
    client = OpenAISampler(url, "m", max_retries=2, backoff=0.01, timeout=2)
    with pytest.raises(ServerError, match=f"{url}/completions failed after 3 attempts"):
        client.generate(["a"], max_new_tokens=2, key=jax.random.key(0))
    assert client.requests_sent == 3


class _Fake:
    """A localhost server answering from a script of (status, body) pairs."""

    def __init__(self, script):
        self.script, self.calls = list(script), 0
        fake = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, body = fake.script[min(fake.calls, len(fake.script) - 1)]
                fake.calls += 1
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_retries_then_succeeds_and_malformed_responses():
    good = {"choices": [{"index": 0, "text": "ok", "finish_reason": "stop"}]}
    fake = _Fake([(503, "busy"), (429, "slow down"), (200, good)])
    try:
        out = OpenAISampler(fake.url, "m", backoff=0.01).generate(
            ["a"], max_new_tokens=2, key=jax.random.key(0))
        assert out[0][0].text == "ok" and out[0][0].finish_reason == "stop"
        assert fake.calls == 3
    finally:
        fake.close()
    for body, pattern in [("<html>oops", "not JSON"), ({"choices": []}, "expected 1 choices"),
                          ({"choices": [{"index": 0, "text": None}]}, "choice text is None"),
                          ([1, 2], "expected a JSON object")]:
        fake = _Fake([(200, body)])
        try:
            with pytest.raises(ValueError, match=f"malformed response from {fake.url}.*{pattern}"):
                OpenAISampler(fake.url, "m").generate(["a"], max_new_tokens=2,
                                                      key=jax.random.key(0))
        finally:
            fake.close()
    fake = _Fake([(200, {"data": [{"index": 0}]})])
    try:
        with pytest.raises(ValueError, match="malformed response.*bad embedding"):
            OpenAISampler(fake.url, "m").embed(["a"])
    finally:
        fake.close()


def test_bad_client_arguments():
    with pytest.raises(ValueError, match="base_url must start with http"):
        OpenAISampler("localhost:8000", "m")
    with pytest.raises(ValueError, match="max_concurrency must be a positive int"):
        OpenAISampler("http://127.0.0.1:1/v1", "m", max_concurrency=0)
    client = OpenAISampler("http://127.0.0.1:1/v1", "m")
    with pytest.raises(ValueError, match="prompts must be a non-empty list"):
        client.generate([], max_new_tokens=2, key=jax.random.key(0))
    with pytest.raises(ValueError, match="max_new_tokens must be a positive int"):
        client.generate(["a"], max_new_tokens=-1, key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"top_p must lie in \(0, 1\]"):
        client.generate(["a"], max_new_tokens=2, top_p=0, key=jax.random.key(0))
    with pytest.raises(ValueError, match="temperature must be a finite float >= 0"):
        client.chat([{"role": "user", "content": "x"}], max_new_tokens=2, temperature=-2,
                    key=jax.random.key(0))


def test_seed_from_key_bad_inputs():
    with pytest.raises(TypeError, match="seed_from_key: key must be a single typed key"):
        seed_from_key(0)
    with pytest.raises(TypeError, match=r"seed_from_key: key must be a single typed key.*\(2,\)"):
        seed_from_key(jax.random.split(jax.random.key(0), 2))
