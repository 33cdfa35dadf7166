"""Tests of the softstep package."""
