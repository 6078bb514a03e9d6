"""Streams as code: the one owner of every stream, durable consumer and KV bucket."""
