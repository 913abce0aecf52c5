"""Plausible wrong solutions: each exercise check must reject every one."""
