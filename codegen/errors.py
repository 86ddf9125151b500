"""Domain errors of code issuance; they carry data and know nothing of HTTP."""

_MAX_SHOWN = 40


def _shown(value: str) -> str:
    # Inputs come from untrusted requests: keep messages short whatever was sent.
    if len(value) > _MAX_SHOWN:
        return repr(value[:_MAX_SHOWN] + "...")
    return repr(value)


class CodegenError(Exception):
    """Base of every code-issuance error; `field` names the input at fault, if any."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidInput(CodegenError):
    """An input value is well-formed but not acceptable here; `field` names it."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason, field=field)
        self.reason = reason


class ObjectNotFound(CodegenError):
    """The object does not exist, or belongs to another brand (indistinguishable on purpose)."""

    def __init__(self, kind: str, object_id: object, *, field: str | None = None) -> None:
        super().__init__(f"{kind} {object_id} not found", field=field)
        self.kind = kind
        self.object_id = object_id


class StateConflict(CodegenError):
    """The request contradicts the current state (a duplicate, a wrong lifecycle state)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message, field=field)


class InvalidGtin(CodegenError):
    """A GTIN is not 8, 12, 13 or 14 digits with a valid check digit."""

    def __init__(self, value: str, reason: str, *, field: str | None = "gtin") -> None:
        super().__init__(f"invalid GTIN {_shown(value)}: {reason}", field=field)
        self.value = value
        self.reason = reason


class InvalidSscc(CodegenError):
    """An SSCC (case or pallet code) is malformed or cannot be built from its parts."""

    def __init__(self, value: str, reason: str, *, field: str | None = "sscc") -> None:
        super().__init__(f"invalid SSCC {_shown(value)}: {reason}", field=field)
        self.value = value
        self.reason = reason


class InvalidBrandCode(CodegenError):
    """A brand short code is not 4-8 characters of the serial alphabet."""

    def __init__(self, value: str, *, field: str | None = "brand_code") -> None:
        super().__init__(f"invalid brand short code {_shown(value)}: want 4-8 of A-Z and 2-7", field=field)
        self.value = value


class InvalidScanDomain(CodegenError):
    """A scan domain is not a plain lowercase-able ASCII host name."""

    def __init__(self, value: str, *, field: str | None = "scan_domain") -> None:
        super().__init__(f"invalid scan domain {_shown(value)}", field=field)
        self.value = value


class InvalidCodeTarget(CodegenError):
    """A code must name exactly one of a GTIN or a brand short code."""

    def __init__(self, reason: str, *, field: str | None = "gtin") -> None:
        super().__init__(reason, field=field)
        self.reason = reason


class InvalidRange(CodegenError):
    """An item index or index range is outside what a code can carry."""

    def __init__(self, start: int, stop: int, reason: str, *, field: str | None = "range") -> None:
        super().__init__(f"invalid index range [{start}, {stop}): {reason}", field=field)
        self.start = start
        self.stop = stop
        self.reason = reason


class MalformedCode(CodegenError):
    """A scanned string is not a code of ours (its authenticity is a separate question)."""

    def __init__(self, reason: str, *, field: str | None = "code") -> None:
        super().__init__(f"malformed code: {reason}", field=field)
        self.reason = reason


class InvalidKey(CodegenError):
    """Key material has the wrong size or a key id is out of range."""

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        super().__init__(f"invalid key: {reason}", field=field)
        self.reason = reason


class UnsealError(CodegenError):
    """A sealed blob could not be opened: unknown master key, wrong context or tampering."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"cannot unseal: {reason}")
        self.reason = reason


class InvalidFileName(CodegenError):
    """A name for a file inside an export archive is unsafe or empty."""

    def __init__(self, value: str, *, field: str | None = "name") -> None:
        super().__init__(f"invalid file name {_shown(value)}", field=field)
        self.value = value
