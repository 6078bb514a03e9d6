"""Councils: which agents deliberate for each role, kept as events in the CONFIG stream."""
