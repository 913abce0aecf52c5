"""Automatic checks for the exercises, one module per chapter."""
