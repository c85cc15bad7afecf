"""The store: one SQLCipher file. All SQL in Kairan lives in this package."""

from kairand.store.database import Store, open_connection

__all__ = ["Store", "open_connection"]
