"""Functional embeddings for multi-area SEEG recordings across subjects.

This package has not landed yet; its issue builds it.
"""
