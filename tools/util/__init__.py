"""Shared utilities: image and file I/O, metrics, tiling, memory, figures, degradation synthesis.

The floor of the house: these modules import nothing else of RestoreAgent's.
"""
