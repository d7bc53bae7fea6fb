"""DRIFT: Distributed RF Intelligence Network Toolkit."""

__version__ = "0.1.0"
