"""How a refusal is reported: ``Problem`` (one field error), ``InvalidCrdError`` and the server's Status message.

Owns the server's error types, how it prints them, their Status cause reasons, which of them are decoding errors
(HTTP 400, not 422) and ``invalid_message`` (the text of ``errors.NewInvalid``). Every checking module builds
``Problem``s; ``_api.check_crd`` raises ``InvalidCrdError``; ``crdcheck`` re-exports all of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

_CRD_KIND: Final = "CustomResourceDefinition.apiextensions.k8s.io"

ErrorType = Literal[
    "Required",
    "Invalid",
    "TypeInvalid",
    "NotSupported",
    "Forbidden",
    "Duplicate",
    "TooLong",
    "TooMany",
    "InternalError",
    "UnknownField",
    "Unmarshal",
]
#: How the API server prints each error type (``field.ErrorType.String()``).
_TYPE_TEXT: Final[dict[str, str]] = {
    "Required": "Required value",
    "Invalid": "Invalid value",
    "TypeInvalid": "Invalid value",
    "NotSupported": "Unsupported value",
    "Forbidden": "Forbidden",
    "Duplicate": "Duplicate value",
    "TooLong": "Too long",
    "TooMany": "Too many",
    "InternalError": "Internal error",
}
#: The ``reason`` of a Status cause for each error type.
_CAUSE_REASON: Final[dict[str, str]] = {
    "Required": "FieldValueRequired",
    "Invalid": "FieldValueInvalid",
    "TypeInvalid": "FieldValueTypeInvalid",
    "NotSupported": "FieldValueNotSupported",
    "Forbidden": "FieldValueForbidden",
    "Duplicate": "FieldValueDuplicate",
    "TooLong": "FieldValueTooLong",
    "TooMany": "FieldValueTooMany",
    "InternalError": "InternalError",
    "UnknownField": "FieldValueInvalid",
    "Unmarshal": "FieldValueInvalid",
}
#: Error types that the server reports while decoding the request (HTTP 400), before any validation.
DECODE_ERROR_TYPES: Final = frozenset({"UnknownField", "Unmarshal"})


@dataclass(frozen=True)
class Problem:
    """One reason the API server would refuse the CRD."""

    #: The field path as the server prints it, e.g. ``spec.validation.openAPIV3Schema.properties[metadata]``.
    field: str
    type: ErrorType
    #: What is wrong, in the server's words.
    detail: str = ""
    #: The offending value as the server prints it (already quoted/JSON), when it prints one.
    value: str | None = None

    @property
    def reason(self) -> str:
        """The Status cause reason (``FieldValueForbidden``, ...)."""
        return _CAUSE_REASON[self.type]

    @property
    def body(self) -> str:
        """The error without its field (``field.Error.ErrorBody``): the ``message`` of a Status cause."""
        if self.type == "UnknownField":
            return f'strict decoding error: unknown field "{self.field}"'
        if self.type == "Unmarshal":
            return self.detail
        body = _TYPE_TEXT[self.type]
        if self.value is not None and self.type not in ("Required", "Forbidden", "TooLong", "InternalError"):
            body = f"{body}: {self.value}"
        if self.detail:
            body = f"{body}: {self.detail}"
        return body

    def __str__(self) -> str:
        if self.type in DECODE_ERROR_TYPES or not self.field:
            return self.body
        return f"{self.field}: {self.body}"


class InvalidCrdError(ValueError):
    """The API server would refuse this CustomResourceDefinition; ``problems`` says why.

    ``code``/``reason``/``str()`` are the server's answer: 400 ``BadRequest`` when the body does not decode (a wrongly
    typed value, or an unknown field under strict field validation), else 422 ``Invalid``.
    """

    def __init__(self, name: str, problems: Sequence[Problem]) -> None:
        self.name = name
        self.problems: tuple[Problem, ...] = tuple(problems)
        self.decoding = any(problem.type in DECODE_ERROR_TYPES for problem in self.problems)
        self.code, self.reason = (400, "BadRequest") if self.decoding else (422, "Invalid")
        super().__init__(invalid_message(name, self.problems))

    @property
    def details(self) -> dict[str, Any] | None:
        """The ``details`` of the server's Status (None for a decoding error, which has none)."""
        if self.decoding:
            return None
        causes = [{"reason": p.reason, "message": p.body, "field": p.field} for p in self.problems]
        return {
            "name": self.name,
            "group": "apiextensions.k8s.io",
            "kind": "CustomResourceDefinition",
            "causes": causes,
        }


def invalid_message(name: str, problems: Sequence[Problem]) -> str:
    """The message of the server's Status: ``errors.NewInvalid`` (one error, or ``[a, b, ...]`` deduplicated) or,
    for decoding problems, the decoder's error."""
    if any(problem.type in DECODE_ERROR_TYPES for problem in problems):
        strict = [problem for problem in problems if problem.type == "UnknownField"]
        text = (
            "strict decoding error: " + ", ".join(f'unknown field "{problem.field}"' for problem in strict)
            if strict
            else str(problems[0])
        )
        return f'CustomResourceDefinition in version "v1" cannot be handled as a CustomResourceDefinition: {text}'
    texts = list(dict.fromkeys(str(problem) for problem in problems))
    joined = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    return f'{_CRD_KIND} "{name}" is invalid: {joined}'
