"""Experiment harness and per-paper experiment scripts.

The harness (config loading, workdir writer, progress, checkpoints, mesh helpers and
the claim registry) lives in the modules of this package; each paper has a subpackage
``experiments/<pkg>/`` with ``main.py``, ``configs/`` and ``claims.py``.
``python -m experiments.reproduce --tier quick|standard|full`` runs every claim.
"""
