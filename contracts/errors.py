"""Errors that dead-letter a message at once: retrying could never make it succeed."""


class Rejected(ValueError):
    """A message that will never be processed as sent. The text is the dead-letter reason."""


class ContractViolation(Rejected):
    """Input that breaks its contract: undecodable, invalid, or on an unknown subject."""
