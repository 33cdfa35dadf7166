"""Serves one of our JAX models through an OpenAI-compatible HTTP API on localhost.

    python -m llm_tools.serve --model smollm2 --port 8000          # SmolLM2-135M-Instruct
    python -m llm_tools.serve --model tiny --port 0                 # random tiny byte-level model
    python -m llm_tools.serve --model ckpt:/path/to/workdir         # a small LM we trained

Endpoints (the subset vLLM and llama.cpp servers speak): ``GET /v1/models``,
``POST /v1/completions`` (``prompt``, ``max_tokens``, ``temperature``, ``top_p``, ``top_k``,
``n``, ``stop``, ``seed``, ``logprobs``, ``echo``, ``return_token_ids``),
``POST /v1/chat/completions`` (``messages`` instead of ``prompt``) and
``POST /v1/embeddings`` (``input``). A request's ``seed`` becomes ``jax.random.key(seed)``,
so the same request gives the same answer. Requests run one at a time (one model, one lock).
The first line printed is ``listening on http://HOST:PORT``.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jax
import numpy as np

from llm_tools.sampler import Completion, JaxSampler

__all__ = ["build_sampler", "make_server", "main"]


class BadRequest(ValueError):
    pass


def _get(body, name, types, default=None, required=False):
    if name not in body or body[name] is None:
        if required:
            raise BadRequest(f"missing required field {name!r}")
        return default
    value = body[name]
    if not isinstance(value, types) or isinstance(value, bool) and bool not in (
            types if isinstance(types, tuple) else (types,)):
        raise BadRequest(f"field {name!r} must be {types}, got {type(value).__name__}")
    return value


def _sampling(body):
    stop = body.get("stop") or []
    if isinstance(stop, str):
        stop = [stop]
    seed = _get(body, "seed", int, 0)
    return dict(max_new_tokens=_get(body, "max_tokens", int, 16),
                temperature=float(_get(body, "temperature", (int, float), 1.0)),
                top_p=float(_get(body, "top_p", (int, float), 1.0)),
                top_k=max(0, _get(body, "top_k", int, 0)),
                stop=list(stop), n=_get(body, "n", int, 1), key=jax.random.key(seed))


def _completion_choice(i, comp, body, tokenizer, prompt_part=None):
    choice = {"index": i, "text": comp.text, "finish_reason": comp.finish_reason}
    if body.get("return_token_ids"):
        choice["token_ids"] = list(comp.token_ids)
    if body.get("logprobs") is not None:
        tokens, lps, offsets = [], [], []
        pos = 0
        if prompt_part is not None:
            p_ids, p_lps, p_text = prompt_part
            for t, lp in zip(p_ids, p_lps, strict=True):
                s = tokenizer.decode([t])
                tokens.append(s)
                lps.append(lp)
                offsets.append(pos)
                pos += len(s)
            choice["text"] = p_text + comp.text
        for t, lp in zip(comp.token_ids, comp.logprobs, strict=True):
            s = tokenizer.decode([t])
            tokens.append(s)
            lps.append(lp)
            offsets.append(pos)
            pos += len(s)
        choice["logprobs"] = {"tokens": tokens, "token_logprobs": lps, "text_offset": offsets}
    return choice


def handle(sampler: JaxSampler, path: str, body: dict) -> dict:
    """One API call: returns the response JSON (raises BadRequest / ValueError on bad input)."""
    created = int(time.time())
    if path == "/v1/completions":
        prompts = _get(body, "prompt", (str, list), required=True)
        prompts = [prompts] if isinstance(prompts, str) else prompts
        args = _sampling(body)
        echo = bool(body.get("echo"))
        score_only = echo and args["max_new_tokens"] == 0  # vLLM-style prompt scoring
        if score_only:
            args["max_new_tokens"] = 1  # only for validation below; nothing is generated
        keys = jax.random.split(args.pop("key"), len(prompts))
        choices = []
        for pi, (prompt, key) in enumerate(zip(prompts, keys, strict=True)):
            if score_only:
                if not prompt:
                    raise BadRequest(f"prompt {pi} is empty")
                comps = [Completion("", (), (), "length")] * args["n"]
            else:
                comps = sampler.generate([prompt], key=key, **args)[0]
            prompt_part = None
            if echo:
                ids = sampler.tokenizer.encode(prompt, add_bos=sampler.add_bos)
                lp = [None, *sampler.score_ids(ids)]
                prompt_part = (ids, lp, prompt)
            for j, comp in enumerate(comps):
                choices.append(_completion_choice(pi * args["n"] + j, comp, body,
                                                  sampler.tokenizer, prompt_part))
        return {"id": f"cmpl-{uuid.uuid4().hex[:12]}", "object": "text_completion",
                "created": created, "model": sampler.name, "choices": choices}
    if path == "/v1/chat/completions":
        messages = _get(body, "messages", list, required=True)
        args = _sampling(body)
        comps = sampler.chat(messages, **args)
        choices = []
        for i, c in enumerate(comps):
            ch = {"index": i, "message": {"role": "assistant", "content": c.text},
                  "finish_reason": c.finish_reason}
            if body.get("return_token_ids"):
                ch["token_ids"] = list(c.token_ids)
            if body.get("logprobs"):
                ch["logprobs"] = {"content": [
                    {"token": sampler.tokenizer.decode([t]), "logprob": lp}
                    for t, lp in zip(c.token_ids, c.logprobs, strict=True)]}
            choices.append(ch)
        return {"id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion",
                "created": created, "model": sampler.name, "choices": choices}
    if path == "/v1/embeddings":
        inputs = _get(body, "input", (str, list), required=True)
        inputs = [inputs] if isinstance(inputs, str) else inputs
        vecs = sampler.embed(inputs)
        return {"object": "list", "model": sampler.name, "data": [
            {"object": "embedding", "index": i, "embedding": v.tolist()}
            for i, v in enumerate(np.asarray(vecs))]}
    raise KeyError(path)


def make_server(sampler: JaxSampler, host: str = "127.0.0.1", port: int = 0
                ) -> ThreadingHTTPServer:
    """An HTTP server (not started) answering the OpenAI-compatible API for ``sampler``."""
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):  # quiet
            pass

        def _send(self, code, obj):
            data = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, code, message):
            self._send(code, {"error": {"message": message, "type": "invalid_request_error",
                                        "code": code}})

        def do_GET(self):
            if self.path.rstrip("/") in ("/v1/models", "/models"):
                self._send(200, {"object": "list", "data": [
                    {"id": sampler.name, "object": "model", "owned_by": "llm_tools"}]})
            elif self.path == "/health":
                self._send(200, {"status": "ok"})
            else:
                self._error(404, f"no route {self.path}")

        def do_POST(self):
            try:
                n = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(n) or b"{}")
                if not isinstance(body, dict):
                    raise BadRequest("the request body must be a JSON object")
            except (ValueError, json.JSONDecodeError) as e:
                self._error(400, f"bad JSON body: {e}")
                return
            try:
                with lock:
                    out = handle(sampler, self.path.rstrip("/"), body)
            except KeyError:
                self._error(404, f"no route {self.path}")
                return
            except (ValueError, TypeError) as e:
                self._error(400, str(e))
                return
            except Exception as e:  # noqa: BLE001 - report, keep serving
                self._error(500, f"{type(e).__name__}: {e}")
                return
            self._send(200, out)

    return ThreadingHTTPServer((host, port), Handler)


def build_sampler(spec: str, *, max_seq_len: int = 2048) -> JaxSampler:
    """``smollm2`` | ``tiny`` | ``ckpt:<workdir of llm_tools.train>``."""
    if spec == "smollm2":
        return JaxSampler.from_smollm2(max_seq_len=max_seq_len)
    if spec == "tiny":
        from flax import nnx

        from llm_tools.model import Llama
        from llm_tools.tiny import tiny_config
        from llm_tools.tokenizer import ByteTokenizer

        return JaxSampler(Llama(tiny_config(), rngs=nnx.Rngs(0)), ByteTokenizer(),
                          name="tiny-random")
    if spec.startswith("ckpt:"):
        from llm_tools.train import load_trained

        model, tok = load_trained(spec[len("ckpt:"):])
        return JaxSampler(model, tok, name=f"trained:{spec[5:]}")
    raise ValueError(f"serve: --model must be smollm2, tiny or ckpt:<dir>, got {spec!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llm_tools.serve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-seq-len", type=int, default=2048)
    args = parser.parse_args(argv)
    sampler = build_sampler(args.model, max_seq_len=args.max_seq_len)
    server = make_server(sampler, args.host, args.port)
    host, port = server.server_address[:2]
    print(f"listening on http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
