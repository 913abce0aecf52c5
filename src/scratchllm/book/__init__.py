"""Book tooling (hand-written, never tangled): tangle, execute, render."""
