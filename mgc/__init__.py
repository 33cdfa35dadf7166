"""Mask-guided multi-representation classification of underwater bioacoustics.

This package has not landed yet; its issue builds it.
"""
