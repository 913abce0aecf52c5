"""Build a Large Language Model from Scratch: the book's package.

The subpackages follow the book's table of contents; most of their modules
are tangled from the chapters in ``book/``.  ``scratchllm.book`` (the book
tooling) and ``scratchllm.cli`` (the command line) are written by hand.
"""

__version__ = "0.1.0"
