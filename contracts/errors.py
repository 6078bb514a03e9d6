"""Errors that dead-letter a message at once: retrying could never make it succeed."""

from collections.abc import Sequence


class Rejected(ValueError):
    """A message that will never be processed as sent. The text is the dead-letter reason.

    `reasons` lists each reason on its own, for an answer that names them one by one (a plan's rejection);
    by default the text is the one reason.
    """

    def __init__(self, reason: str, *, reasons: Sequence[str] = ()) -> None:
        super().__init__(reason)
        self.reasons = tuple(reasons) or (reason,)


class ContractViolation(Rejected):
    """Input that breaks its contract: undecodable, invalid, or on an unknown subject."""
