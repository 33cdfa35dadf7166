"""LLM tools: one sampling interface and JAX language models (home of AbstRaL and Thought Branches).

This package has not landed yet; its issue builds it.
"""
