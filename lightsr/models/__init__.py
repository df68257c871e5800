"""Architectures, one per file. The registry of named variants is ``lightsr.registry``."""
