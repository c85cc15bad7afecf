"""E-mail as a second channel (K9): 空メール registration over IMAP, alerts over SMTP."""
