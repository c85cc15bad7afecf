"""E-mail as a second channel (issue 17, K9): 空メール registration over IMAP, alerts over SMTP."""
