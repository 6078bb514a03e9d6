"""Dispatch: starts each requested deliberation once, asking every agent of the role's council."""
