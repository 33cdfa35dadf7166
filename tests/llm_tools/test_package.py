"""The package face: every public name importable from ``llm_tools``, and importing it is light."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import llm_tools

ROOT = Path(__file__).resolve().parents[2]


def test_every_public_name_resolves_to_its_module():
    for name in llm_tools.__all__:
        value = getattr(llm_tools, name)
        module = llm_tools._EXPORTS[name]
        assert getattr(value, "__module__", f"llm_tools.{module}").startswith("llm_tools."), name
    assert set(llm_tools.__all__) <= set(dir(llm_tools))


def test_exports_match_the_modules_public_names():
    # Each exported name is defined (not just imported) at the top level of its module,
    # read from the source, so the table cannot point at a name that does not exist.
    for name, module in llm_tools._EXPORTS.items():
        tree = ast.parse((ROOT / "llm_tools" / f"{module}.py").read_text())
        defined = set()
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef):
                defined.add(node.name)
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                defined |= {t.id for t in targets if isinstance(t, ast.Name)}
            elif isinstance(node, ast.ImportFrom):
                defined |= {a.asname or a.name for a in node.names}
        assert name in defined, f"llm_tools.{module} does not define {name}"


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'Lama'"):
        llm_tools.Lama  # noqa: B018


def test_import_is_light_and_fetch_cli_runs_cleanly():
    code = "import sys, llm_tools; print('jax' in sys.modules, 'llm_tools.model' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]
    cli = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m", "llm_tools.fetch",
                          "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    assert "found in sys.modules" not in cli.stderr
