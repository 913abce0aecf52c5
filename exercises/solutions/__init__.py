"""Reference solutions for the exercises, one module per chapter."""
