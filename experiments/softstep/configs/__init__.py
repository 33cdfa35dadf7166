"""Experiment configs of the softstep package."""
