"""The one error type for input that breaks a contract: it is dead-lettered, never retried."""


class ContractViolation(ValueError):
    """A message that can never be processed as sent. The text is the dead-letter reason."""
