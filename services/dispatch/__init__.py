"""Dispatch: starts each requested deliberation exactly once."""
