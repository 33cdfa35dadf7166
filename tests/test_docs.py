"""Every code block in README.md and docs/**/*.md runs as written.

The convention (docs/design.md, "Docs"):

- a ```python or ```bash block runs in the default test run, so keep it to seconds;
- ``<!-- slow -->`` on the line just before a block: it runs only under ``pytest -m slow``;
- ``<!-- skip: reason -->`` just before a block: it never runs here (it starts a server,
  needs a GPU, or is the test suite itself); the reason is shown as the skip reason;
- ```text (or another non-code language: json, toml, ...) for output and listings.

A fence without a language is an error, so every block says which it is. Each block runs in
its own process from the repository root, with ``python`` being this interpreter; every
``/tmp/`` path in a block is redirected into a fresh temporary folder so that runs of the
docs never meet each other or an earlier run.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUNNABLE = {"python": "python", "py": "python", "bash": "bash", "sh": "bash", "shell": "bash"}
_FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[^`\s]*)\s*$")
_SLOW = re.compile(r"^\s*<!--\s*slow\s*-->\s*$")
_SKIP = re.compile(r"^\s*<!--\s*skip:\s*(?P<reason>\S.*?)\s*-->\s*$")
_MARKER = re.compile(r"^\s*<!--\s*(slow|skip)\b")


@dataclasses.dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    mode: str  # "run", "slow" or "skip"
    reason: str = ""

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT) if self.path.is_absolute() else self.path}:" \
               f"{self.line}"


def parse_blocks(text: str, path: Path) -> list[Block]:
    """The fenced blocks of a markdown text with their markers.

    Raises:
      ValueError: for an unclosed fence or a malformed ``<!-- slow/skip -->`` marker.
    """
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, lang = i, m.group("lang").lower()
        j = i + 1
        while j < len(lines) and lines[j].strip() != "```":
            j += 1
        if j == len(lines):
            raise ValueError(f"{path}:{start + 1}: code fence is never closed")
        indent = len(m.group("indent"))
        code = "\n".join(line[indent:] for line in lines[start + 1:j]) + "\n"
        k = start - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        before = lines[k] if k >= 0 else ""
        mode, reason = "run", ""
        if _SLOW.match(before):
            mode = "slow"
        elif skip := _SKIP.match(before):
            mode, reason = "skip", skip.group("reason")
        elif _MARKER.match(before):
            raise ValueError(f"{path}:{k + 1}: malformed marker {before.strip()!r}; use "
                             "<!-- slow --> or <!-- skip: reason -->")
        blocks.append(Block(path, start + 1, lang, code, mode, reason))
        i = j + 1
    return blocks


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _all_blocks() -> list[Block]:
    return [b for p in doc_files() for b in parse_blocks(p.read_text(encoding="utf-8"), p)]


def _params():
    params = []
    for b in _all_blocks():
        if RUNNABLE.get(b.lang) is None:
            continue
        marks = []
        if b.mode == "slow":
            marks.append(pytest.mark.slow)
        elif b.mode == "skip":
            marks.append(pytest.mark.skip(reason=b.reason))
        params.append(pytest.param(b, id=b.id, marks=marks))
    return params


def run_block(block: Block, tmp: Path, timeout: float) -> subprocess.CompletedProcess:
    """Runs one block from the repository root; ``/tmp/`` paths go to ``tmp``."""
    code = block.code.replace("/tmp/", f"{tmp}/")
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONUNBUFFERED="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if RUNNABLE[block.lang] == "python":
        script = tmp / "block.py"
        script.write_text(code, encoding="utf-8")
        cmd = [sys.executable, str(script)]
    else:
        cmd = ["bash", "-e", "-o", "pipefail", "-c", code]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("block", _params())
def test_code_block_runs(block: Block, tmp_path):
    out = run_block(block, tmp_path, timeout=3600 if block.mode == "slow" else 600)
    assert out.returncode == 0, (
        f"{block.id} ({block.lang}) exited with {out.returncode}\n--- block ---\n{block.code}"
        f"--- stdout (end) ---\n{out.stdout[-3000:]}\n--- stderr (end) ---\n{out.stderr[-3000:]}")


def _commands(code: str) -> list[list[str]]:
    """The ``python -m ...`` command lines of a bash block (continuations joined), except
    a command followed by ``||``, which the block expects to fail."""
    joined = re.sub(r"\\\n\s*", " ", code)
    out = []
    for line in joined.splitlines():
        if "||" in line:
            continue
        for part in re.split(r"&&|;", line):
            if not part.strip().startswith("python -m "):
                continue  # e.g. a curl line whose quoted JSON spans several lines
            argv = shlex.split(part, comments=True)
            if argv[:2] == ["python", "-m"] and len(argv) > 2:
                out.append(argv[2:])
    return out


def test_documented_experiment_commands_are_valid():
    """Cheap check of every documented command, slow or skipped ones included: the module
    exists, an experiment main's ``--config`` arguments validate, reproduce's flags are
    consistent and name known packages."""
    from experiments import launch
    from experiments.claims import experiment_packages

    checked = 0
    for b in _all_blocks():
        if RUNNABLE.get(b.lang) != "bash":
            continue
        for argv in _commands(b.code):
            module, args = argv[0], argv[1:]
            assert importlib.util.find_spec(module) is not None, f"{b.id}: no module {module}"
            if module.startswith("experiments.") and module.endswith(".main"):
                assert any(a.startswith("--workdir") for a in args), f"{b.id}: {argv}"
                assert launch.precheck_config_args(["main", *args]) is None, (
                    f"{b.id}: {' '.join(argv)}: {launch.precheck_config_args(['main', *args])}")
                checked += 1
            elif module == "experiments.reproduce":
                text = " ".join(args)
                assert not ("--quick" in args and "--tier" in text), f"{b.id}: {text}"
                for flag in args:
                    if flag.startswith("--only"):
                        value = flag.split("=", 1)[1] if "=" in flag else args[
                            args.index(flag) + 1]
                        unknown = set(value.split(",")) - set(experiment_packages())
                        assert not unknown, f"{b.id}: unknown package(s) {unknown}"
                checked += 1
    assert checked >= 5


def test_every_fence_names_its_language():
    unlabelled = [b.id for b in _all_blocks() if not b.lang]
    assert not unlabelled, (f"code fences without a language: {unlabelled}; label each "
                            "```python, ```bash (run by tests/test_docs.py) or ```text (not run)")


def test_no_indented_code_blocks():
    """Indented code blocks would escape the test; every command sits in a fence."""
    found = []
    for path in doc_files():
        lines = path.read_text(encoding="utf-8").splitlines()
        in_fence = False
        for i, line in enumerate(lines):
            if _FENCE.match(line) or line.strip() == "```":
                in_fence = not in_fence
                continue
            if (not in_fence and i and not lines[i - 1].strip()
                    and re.match(r"^ {4,}(python|pip|import|from|\$) ", line)):
                found.append(f"{path.relative_to(ROOT)}:{i + 1}")
    assert not found, f"indented code blocks (use a ```bash or ```python fence): {found}"


def test_nothing_cites_the_design_document_outside_the_project():
    outside = "shared/" + "DESIGN.md"  # the team's private plan; users have docs/design.md
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if files.returncode != 0:
        pytest.skip("not a git checkout")
    citing = []
    for name in files.stdout.splitlines():
        path = ROOT / name
        if path.suffix in {".py", ".md", ".toml", ".cfg", ".txt", ""} and path.is_file():
            if outside in path.read_text(encoding="utf-8", errors="replace"):
                citing.append(name)
    assert not citing, f"these files cite {outside}, which users do not have: {citing}"


def test_docs_exist_and_links_resolve():
    names = {p.name for p in doc_files()}
    assert {"README.md", "design.md", "experiments.md"} <= names
    for path in doc_files():
        text = path.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if re.match(r"[a-z]+://", target):
                continue
            assert (path.parent / target).exists(), f"{path}: broken link {target}"


def test_parser_honours_the_markers(tmp_path):
    text = "\n".join([
        "# t", "", "```python", "print(1)", "```", "", "<!-- slow -->", "```bash",
        "echo slow", "```", "<!-- skip: starts a server -->", "", "```python", "serve()", "```",
        "```text", "output", "```", "```", "bare", "```", "- item:", "  ```python",
        "  x = 1", "  ```",
    ])
    blocks = parse_blocks(text, tmp_path / "x.md")
    assert [(b.lang, b.mode, b.reason, b.line) for b in blocks] == [
        ("python", "run", "", 3), ("bash", "slow", "", 8),
        ("python", "skip", "starts a server", 13), ("text", "run", "", 16),
        ("", "run", "", 19), ("python", "run", "", 23)]
    assert blocks[0].code == "print(1)\n" and blocks[-1].code == "x = 1\n"
    with pytest.raises(ValueError, match="never closed"):
        parse_blocks("```python\nx = 1\n", tmp_path / "y.md")
    with pytest.raises(ValueError, match="malformed marker '<!-- skip -->'"):
        parse_blocks("<!-- skip -->\n```bash\nls\n```\n", tmp_path / "z.md")
    ok = run_block(blocks[0], tmp_path, timeout=120)
    assert ok.returncode == 0 and ok.stdout == "1\n"
    failing = Block(tmp_path / "w.md", 1, "bash", "false\necho never\n", "run")
    assert run_block(failing, tmp_path, timeout=60).returncode != 0  # bash -e stops at once
    redirected = Block(tmp_path / "v.md", 1, "bash", "echo /tmp/out\n", "run")
    assert run_block(redirected, tmp_path, timeout=60).stdout == f"{tmp_path}/out\n"
