"""Same-day queue: numbered tickets from LINE or a kiosk, calling, board."""
