"""The claim registry that ``experiments.reproduce`` runs.

Each paper package declares its claims in ``experiments/<pkg>/claims.py`` as a module-level
``CLAIMS`` list of :class:`Claim`. A claim's ``run(tier, workdir)`` runs the package's own
experiment config at that tier (writing its usual files into ``workdir``) and returns a
:class:`ClaimResult`: the measured numbers and whether the claim's *direction* held at that
scale. Thresholds are fixed in the claim's code before running, never tuned to pass.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "PACKAGES",
    "Claim",
    "ClaimResult",
    "discover_claims",
    "experiment_packages",
    "packages_without_claims",
]

# Order in which reports list the papers (docs/design.md, "Layout"); experiment packages not
# named here (a paper added later) are found by :func:`experiment_packages` and listed after.
PACKAGES = (
    "muon_ns",
    "lstdq",
    "cqc",
    "softstep",
    "tecrl",
    "llm_tools",
    "thought_branches",
    "abstral",
    "e3_pruner",
    "seeg_embed",
    "mgc",
)

_EXPERIMENTS_DIR = Path(__file__).resolve().parent


def experiment_packages() -> list[str]:
    """Every paper package: :data:`PACKAGES`, then any other ``experiments/<name>/`` folder
    holding a ``main.py`` or ``claims.py``, in that order."""
    found = sorted(
        p.name for p in _EXPERIMENTS_DIR.iterdir()
        if p.is_dir() and p.name.isidentifier()
        and ((p / "main.py").exists() or (p / "claims.py").exists())
    )
    return list(PACKAGES) + [p for p in found if p not in PACKAGES]


@dataclasses.dataclass
class ClaimResult:
    """What one claim measured.

    Attributes:
      numbers: named measurements (floats, ints or short strings).
      held: whether the claim's direction held at this tier; ``None`` if the run could not
        decide (say so in ``summary``).
      summary: one or two sentences stating what was compared and what came out.
      plots: paths (absolute or relative to the claim's workdir) of PNGs to link.
    """

    numbers: Mapping[str, Any]
    held: bool | None
    summary: str = ""
    plots: list[str] = dataclasses.field(default_factory=list)

    def __post_init__(self):
        if self.held is not None and not isinstance(self.held, bool):
            raise TypeError(f"ClaimResult: held must be bool or None, got {self.held!r}")


@dataclasses.dataclass(frozen=True)
class Claim:
    """A paper's claim and the function that tests it.

    Attributes:
      package: the package (``"muon_ns"``).
      name: short identifier, unique within the package (``"ns_matches_svd_rate"``).
      paper: the paper's title and reference.
      statement: the claim in one sentence, as the paper makes it.
      run: ``run(tier, workdir) -> ClaimResult``; ``tier`` is quick|standard|full.
    """

    package: str
    name: str
    paper: str
    statement: str
    run: Callable[[str, Path], ClaimResult]

    @property
    def id(self) -> str:
        return f"{self.package}/{self.name}"


def _check_known(packages: Iterable[str] | None) -> list[str]:
    known = experiment_packages()
    wanted = list(known if packages is None else packages)
    unknown = [p for p in wanted if p not in known]
    if unknown:
        raise ValueError(f"unknown package(s) {unknown}; expected some of {known}")
    return wanted


def _claims_module(pkg: str):
    module_name = f"experiments.{pkg}.claims"
    if not (_EXPERIMENTS_DIR / pkg / "claims.py").exists():
        return None
    return importlib.import_module(module_name)


def packages_without_claims(packages: Iterable[str] | None = None) -> dict[str, str]:
    """The requested packages that register no claim, each with the reason.

    Args:
      packages: package names (``None``: every package of :func:`experiment_packages`).

    Returns:
      ``{package: reason}``, e.g. ``{"mgc": "no experiments/mgc/claims.py"}``, in order.

    Raises:
      ValueError: for a package name that is not an experiment package.
    """
    out = {}
    for pkg in _check_known(packages):
        module = _claims_module(pkg)
        if module is None:
            out[pkg] = f"no experiments/{pkg}/claims.py"
        elif not getattr(module, "CLAIMS", []):
            out[pkg] = f"experiments/{pkg}/claims.py lists no CLAIMS"
    return out


def discover_claims(packages: Iterable[str] | None = None) -> list[Claim]:
    """Imports ``experiments.<pkg>.claims`` for each package that has one.

    Args:
      packages: restrict to these package names (``None``: all of :func:`experiment_packages`).
        Packages without claims contribute none (:func:`packages_without_claims` names them).

    Raises:
      ValueError: for a package name that is not an experiment package, or duplicate ids.
      TypeError: if a ``CLAIMS`` list holds something other than :class:`Claim`.
    """
    claims: list[Claim] = []
    for pkg in _check_known(packages):
        module = _claims_module(pkg)
        if module is None:
            continue
        for claim in getattr(module, "CLAIMS", []):
            if not isinstance(claim, Claim):
                raise TypeError(
                    f"{module.__name__}.CLAIMS holds {type(claim).__name__}, not Claim")
            claims.append(claim)
    ids = [c.id for c in claims]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ValueError(f"duplicate claim ids: {dupes}")
    return claims
