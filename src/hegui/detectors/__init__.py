"""Detectors: one module per detector, a registry to build them from config."""
