"""Subscription programs (配信サービス), school districts, sending institutions and their
scope, pre-approved alert templates. Pure cores: model, scope, templates, dialogue;
shells: service (store + audit), expiry (annual registration)."""
