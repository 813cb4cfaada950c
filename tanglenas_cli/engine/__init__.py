"""Loops and I/O: search (bilevel), train from scratch, evaluate, derive; run directories and checkpoints."""
