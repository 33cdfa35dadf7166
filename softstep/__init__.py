"""SoftStep: Learning Sparse Similarity Powers Deep Neighbor-Based Regression.

Susman, Lin, Suarez-Farinas, Colonel; arXiv 2506.08139.

This package has not landed yet; its issue builds it.
"""
