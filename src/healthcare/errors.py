"""What the use cases can refuse, independent of HTTP or HTML."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    status = 400
    title = "Bad request"
    outcome = "failure"  # how the audit trail records the refusal

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(ServiceError):
    status = 404
    title = "Not found"
    outcome = "not_found"


class Deleted(NotFound):
    """The record existed and was (soft-)deleted: the JSON API answers 404 as for any missing
    record, FHIR answers 410 Gone."""


class Conflict(ServiceError):
    status = 409
    title = "Conflict"
    outcome = "conflict"


class PossibleDuplicates(Conflict):
    """The new or changed patient looks like patients already on record: the caller shows
    them and may confirm that this is somebody else."""

    outcome = "possible_duplicate"

    def __init__(self, detail: str, candidates: list[dict[str, Any]]) -> None:
        super().__init__(detail)
        self.candidates = candidates


class VersionMismatch(ServiceError):
    """Somebody changed the record since the caller read it."""

    status = 412
    title = "Precondition failed"
    outcome = "stale"

    def __init__(self, detail: str, current_version: int | None) -> None:
        super().__init__(detail)
        self.current_version = current_version


class Forbidden(ServiceError):
    """Signed in, but the role does not allow it."""

    status = 403
    title = "Forbidden"
    outcome = "denied"


class Invalid(ServiceError):
    """A rule the request schema cannot express (a weak password, say)."""

    status = 422
    title = "Invalid data"
    outcome = "invalid"


class SignInFailed(ServiceError):
    status = 401
    title = "Sign-in failed"
    outcome = "failure"


class TooManyAttempts(ServiceError):
    status = 429
    title = "Too many attempts"
    outcome = "throttled"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class AuditBacklog(ServiceError):
    """Events that change nothing wait too long, or too many, for the audit trail: answering
    more would disclose what the trail might never record (see healthcare.audit.pending)."""

    status = 503
    title = "Service unavailable"
    outcome = "unavailable"
    retry_after = 1
