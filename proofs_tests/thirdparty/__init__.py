"""Real third-party implementations checked through `vaespec.impl.adapters` (the `thirdparty` extra).

Each module is a backend over one library, with a `.differences` file next to it: every law the
library is expected to break, the verdict and a one-line reason (a valid `--vaespec-xfail` file). Only
this package imports the libraries (an import-linter contract in pyproject.toml).
"""
