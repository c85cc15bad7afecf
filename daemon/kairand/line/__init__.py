"""The LINE side: webhook verification, event parsing, the Messaging API client, rich menu."""
