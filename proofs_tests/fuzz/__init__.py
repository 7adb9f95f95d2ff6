"""Fuzz harnesses: the Python API, the files and the command line, and crash trials of training's
checkpoints."""
