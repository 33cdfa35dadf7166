"""Direct Doubly Robust Estimation of Conditional Quantile Contrasts.

Givens, Liu, Reeve, Reluga; ICLR 2026, arXiv 2601.19666.

This package has not landed yet; its issue builds it.
"""
