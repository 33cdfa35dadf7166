"""E3-Pruner: layer pruning with Gumbel-TopK masks and entropy-aware distillation.

This package has not landed yet; its issue builds it.
"""
