"""A Unifying View of Coverage in Linear Off-Policy Evaluation.

Amortila, Huang, Krishnamurthy, Jiang; ICLR 2026, arXiv 2601.19030.

This package has not landed yet; its issue builds it.
"""
