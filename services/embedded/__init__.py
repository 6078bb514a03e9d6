"""The embedded default: real servers from registry packages, on loopback, with data on disk."""
