"""Event contracts of the mesh. Depends on msgspec alone; anything may import it."""
