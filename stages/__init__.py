"""Thin drivers, one per user-facing step; each parses arguments and calls pipeline/."""
