"""Staff roster rules (the store holds the rows; kairand.store.staff is its SQL)."""
