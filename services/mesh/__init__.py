"""Plumbing every service shares: settings, enveloped publishing, idempotent consuming, dead letters."""
