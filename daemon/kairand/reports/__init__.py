"""Documents the appliance issues: deletion certificates, the handling report, aggregate
exports, and the signed final record of a contract-end wipe."""
