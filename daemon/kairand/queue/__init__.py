"""Same-day queue (issue 15): numbered tickets from LINE or a kiosk, calling, board."""
