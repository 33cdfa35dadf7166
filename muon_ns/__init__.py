"""Convergence of Muon with Newton-Schulz.

Kim & Oh, ICLR 2026, arXiv 2601.19156.

This package has not landed yet; its issue builds it.
"""
