"""Ports of the contract written apart from `vaespec.impl`, used to show that the suite accepts
correct implementations it was not written against (`independent.py`)."""
