# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Dense layers, optimizers and the training workspace (placeholder)."""
