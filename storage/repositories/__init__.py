"""Typed, async access to the Vigil schema: one module per domain, each with repositories that
take a psycopg AsyncConnection and return frozen dataclasses. Shared plumbing (errors, keyset
pages, SQL builders) is in `base`."""
