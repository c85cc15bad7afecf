"""Privacy lifecycle: purge, deletion receipts, retention rules, masking, certificates."""
