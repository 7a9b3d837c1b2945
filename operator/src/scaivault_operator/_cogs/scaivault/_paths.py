"""Validation and URL encoding of secret paths and list prefixes.

A secret path is hierarchical: segments separated by ``/``. The client keeps the separators and
percent-encodes everything else in each segment, so ``team a/db#1`` travels as ``team%20a/db%231``. Before any
request is sent it rejects what no server should be asked for: empty paths, empty segments (leading, trailing
or doubled ``/``), the segments ``.`` and ``..`` (which proxies and servers may collapse into another path),
control characters, lone surrogates (not encodable as UTF-8), and paths longer than ``MAX_PATH_LENGTH``.

Used by ``_client`` (client side) and by ``scaivault_operator.devvault`` (server side), so both agree on what
a valid path is.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

from ._exceptions import InvalidPathError

__all__ = ["MAX_PATH_LENGTH", "encode_path", "validate_path", "validate_prefix"]

MAX_PATH_LENGTH = 1024


def _check_characters(value: str, kind: str) -> None:
    for index, char in enumerate(value):
        category = unicodedata.category(char)
        if category == "Cc":
            raise InvalidPathError(f"{kind} contains a control character at offset {index}")
        if category == "Cs":  # a lone surrogate has no UTF-8 encoding, so it cannot travel in a URL
            raise InvalidPathError(f"{kind} contains a lone surrogate at offset {index}")
    if len(value) > MAX_PATH_LENGTH:
        raise InvalidPathError(f"{kind} is {len(value)} characters long; the limit is {MAX_PATH_LENGTH}")


def _check_segments(segments: list[str], kind: str) -> None:
    for segment in segments:
        if segment == "":
            raise InvalidPathError(f"{kind} has an empty segment (leading, trailing or doubled '/')")
        if segment in (".", ".."):
            raise InvalidPathError(f"{kind} has a '{segment}' segment; use the full path instead")


def validate_path(path: str) -> str:
    """Return ``path`` unchanged if it is a valid secret path, else raise ``InvalidPathError``."""
    if not isinstance(path, str) or path == "":
        raise InvalidPathError("secret path is empty")
    _check_characters(path, "secret path")
    _check_segments(path.split("/"), "secret path")
    return path


def validate_prefix(prefix: str) -> str:
    """Return ``prefix`` unchanged if it is a valid list prefix, else raise ``InvalidPathError``.

    A prefix is matched as a plain string prefix of the path. It may be empty (everything the token can see)
    and may end in ``/`` or in the middle of a segment; otherwise the path rules apply.
    """
    if not isinstance(prefix, str):
        raise InvalidPathError("list prefix must be a string")
    if prefix == "":
        return prefix
    _check_characters(prefix, "list prefix")
    segments = prefix.split("/")
    if segments[-1] == "":
        segments = segments[:-1]
    _check_segments(segments, "list prefix")
    return prefix


def encode_path(path: str) -> str:
    """Validate ``path`` and percent-encode each segment, keeping the ``/`` separators."""
    validate_path(path)
    return "/".join(quote(segment, safe="") for segment in path.split("/"))
