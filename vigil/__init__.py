"""Vigil: GPU video analytics. Cross-cutting pieces (settings, CLI, embedded stack) live here;
the domains live in storage/, control/ and pipeline/, installed as vigil.storage etc."""

__version__ = "0.1.0"
