"""The resident conversation: purpose notice, consent, the one-question-at-a-time survey and
settings. Pure: events and state in, replies and store operations out."""
