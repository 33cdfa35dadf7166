"""A resumable on-disk store of rollouts, keyed by problem / prefix / sample / model / params.

Layout of a store directory::

    manifest.json                       model, sampling params, format version
    <problem>/problem.json              the prompt, the CoT and its token ids (fingerprint)
    <problem>/<kind>_<index>.jsonl      one JSON line per rollout (``"sample": j`` inside)

``kind`` names the experiment (``resample``, ``forced``, ``resilience`` …) and ``index`` the
prefix (sentence) it continues. Each rollout line is written with one ``write`` on an
``O_APPEND`` descriptor, so an interrupted run keeps every rollout it finished, and a line cut
by a crash is ignored on reading. Opening a store with another model or other sampling
parameters, or storing another CoT under a known problem id, raises ``ValueError``: rollouts
of different distributions are never mixed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["Rollout", "RolloutStore", "SamplingParams"]

FORMAT_VERSION = 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclasses.dataclass(frozen=True)
class SamplingParams:
    """How rollouts are drawn (Thought Anchors defaults: T = 0.6, top-p = 0.95).

    Attributes:
      temperature: sampling temperature ``τ > 0``.
      top_p: nucleus mass in ``(0, 1]``.
      top_k: top-k cut (0 = off).
      max_new_tokens: token budget of each rollout.
      stop: stop strings.
    """

    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int = 0
    max_new_tokens: int = 256
    stop: tuple[str, ...] = ()

    def __post_init__(self):
        if not isinstance(self.temperature, (int, float)) or not self.temperature > 0:
            raise ValueError("SamplingParams: temperature must be > 0 (resampling needs a "
                             f"distribution), got {self.temperature!r}")
        if not isinstance(self.top_p, (int, float)) or not 0 < self.top_p <= 1:
            raise ValueError(f"SamplingParams: top_p must lie in (0, 1], got {self.top_p!r}")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise ValueError(f"SamplingParams: top_k must be an int >= 0, got {self.top_k!r}")
        if (isinstance(self.max_new_tokens, bool) or not isinstance(self.max_new_tokens, int)
                or self.max_new_tokens <= 0):
            raise ValueError("SamplingParams: max_new_tokens must be a positive int, got "
                             f"{self.max_new_tokens!r}")
        if isinstance(self.stop, str):
            raise ValueError(f"SamplingParams: stop must be a list of strings, got {self.stop!r}")
        object.__setattr__(self, "temperature", float(self.temperature))
        object.__setattr__(self, "top_p", float(self.top_p))
        object.__setattr__(self, "stop", tuple(self.stop))

    def asdict(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k,
                "max_new_tokens": self.max_new_tokens, "stop": list(self.stop)}

    def sampler_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the :class:`~llm_tools.Sampler` methods."""
        return {"temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k,
                "max_new_tokens": self.max_new_tokens, "stop": self.stop}

    def replace(self, **changes) -> SamplingParams:
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class Rollout:
    """One continuation of a prefix.

    Attributes:
      sample: its sample index ``j`` (drawn with ``fold_in(key_prefix, j)``).
      text: the generated text.
      token_ids: its token ids (including a final stop token, if any).
      logprobs: the model's log-probability of each token.
      finish_reason: ``"stop"`` or ``"length"``.
      answer: the normalized final answer (``""`` if none).
      resampled: the first sentence of the continuation (what replaced the cut sentence).
    """

    sample: int
    text: str
    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    finish_reason: str
    answer: str
    resampled: str

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["token_ids"], d["logprobs"] = list(self.token_ids), [round(x, 6) for x in self.logprobs]
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Rollout:
        return cls(int(d["sample"]), d["text"], tuple(d["token_ids"]), tuple(d["logprobs"]),
                   d["finish_reason"], d["answer"], d["resampled"])


def _check_name(who: str, what: str, name) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"{who}: {what} must be 1-128 characters of letters, digits, '_', '.', "
                         f"'-' (starting with a letter or digit), got {name!r}")
    return name


def _atomic_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _atomic_write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def fingerprint(obj) -> str:
    """A short stable hash of a JSON-able object."""
    data = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.blake2b(data, digest_size=8).hexdigest()


class RolloutStore:
    """Rollouts on disk for one model and one set of sampling parameters.

    Args:
      path: the store's directory (created if missing).
      model: the model's identity (name plus a weights fingerprint, see
        :func:`~llm_tools.thought_branches.sampler_identity`).
      params: the :class:`SamplingParams` every stored rollout was drawn with.

    Raises:
      ValueError: if ``path`` holds a store of another model, other params or another format.
    """

    def __init__(self, path: str | os.PathLike, *, model: str, params: SamplingParams):
        if not isinstance(model, str) or not model:
            raise ValueError(f"RolloutStore: model must be a non-empty str, got {model!r}")
        if not isinstance(params, SamplingParams):
            raise TypeError(f"RolloutStore: params must be SamplingParams, got "
                            f"{type(params).__name__}")
        self.path = Path(path)
        self.model, self.params = model, params
        manifest = {"format_version": FORMAT_VERSION, "model": model, "params": params.asdict()}
        mf = self.path / "manifest.json"
        if mf.exists():
            old = json.loads(mf.read_text(encoding="utf-8"))
            diffs = [k for k in ("format_version", "model", "params") if old.get(k) != manifest[k]]
            if diffs:
                detail = "; ".join(f"{k}: stored {old.get(k)!r}, now {manifest[k]!r}"
                                   for k in diffs)
                raise ValueError(f"RolloutStore: {self.path} holds rollouts of another "
                                 f"{'/'.join(diffs)} ({detail}); refusing to mix them. Use a "
                                 "new directory for this model and these parameters.")
        else:
            _atomic_json(mf, manifest)

    # -- problems ------------------------------------------------------------------------
    def register_problem(self, problem_id: str, record: Mapping[str, Any]) -> None:
        """Records the prompt and CoT analysed under ``problem_id`` (idempotent).

        Raises:
          ValueError: if ``problem_id`` already holds a different record.
        """
        _check_name("RolloutStore.register_problem", "problem_id", problem_id)
        path = self.path / problem_id / "problem.json"
        record = json.loads(json.dumps(dict(record)))
        if path.exists():
            old = json.loads(path.read_text(encoding="utf-8"))
            if old != record:
                keys = sorted(k for k in set(old) | set(record) if old.get(k) != record.get(k))
                raise ValueError(f"RolloutStore: problem {problem_id!r} is stored with another "
                                 f"{', '.join(keys)}; refusing to mix rollouts of two traces")
            return
        _atomic_json(path, record)

    def problem(self, problem_id: str) -> dict[str, Any] | None:
        path = self.path / _check_name("RolloutStore.problem", "problem_id", problem_id) \
            / "problem.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None

    # -- rollouts ------------------------------------------------------------------------
    def _file(self, problem_id: str, kind: str, index: int) -> Path:
        who = "RolloutStore"
        _check_name(who, "problem_id", problem_id)
        _check_name(who, "kind", kind)
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise ValueError(f"{who}: index must be an int >= 0, got {index!r}")
        return self.path / problem_id / f"{kind}_{index}.jsonl"

    def load(self, problem_id: str, kind: str, index: int) -> dict[int, Rollout]:
        """Stored rollouts of one prefix by sample index (the first copy of a sample wins)."""
        path = self._file(problem_id, kind, index)
        out: dict[int, Rollout] = {}
        if not path.exists():
            return out
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                r = Rollout.from_json(json.loads(line))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                continue  # a line cut by an interruption
            out.setdefault(r.sample, r)
        return out

    def append(self, problem_id: str, kind: str, index: int, rollouts: Iterable[Rollout]) -> None:
        """Appends rollouts, one atomic line each."""
        path = self._file(problem_id, kind, index)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                os.write(fd, b"\n")  # end a line cut by an interruption before appending
            for r in rollouts:
                if not isinstance(r, Rollout):
                    raise TypeError(f"RolloutStore.append: expected Rollout, got "
                                    f"{type(r).__name__}")
                os.write(fd, (json.dumps(r.to_json(), sort_keys=True) + "\n").encode("utf-8"))
        finally:
            os.close(fd)

    def missing(self, problem_id: str, kind: str, index: int, n: int) -> list[int]:
        """Sample indices ``< n`` not stored yet."""
        have = self.load(problem_id, kind, index)
        return [j for j in range(n) if j not in have]

    def get(self, problem_id: str, kind: str, index: int, n: int) -> list[Rollout]:
        """Samples ``0 … n-1`` of one prefix, in order.

        Raises:
          ValueError: if some are missing.
        """
        have = self.load(problem_id, kind, index)
        missing = [j for j in range(n) if j not in have]
        if missing:
            raise ValueError(f"RolloutStore.get: {problem_id}/{kind}_{index} lacks samples "
                             f"{missing[:5]}{'…' if len(missing) > 5 else ''} of {n}")
        return [have[j] for j in range(n)]

    def kinds(self, problem_id: str) -> Sequence[str]:
        folder = self.path / problem_id
        return sorted({p.name.rsplit("_", 1)[0] for p in folder.glob("*.jsonl")})
