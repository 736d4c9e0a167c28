"""Keeping secrets out of messages and logs.

The options that are secrets (``key``, ``secret``, ``token``, the password of an
endpoint URL) are ``SecretStr`` in the config models, so they never show in a
``repr`` or a validation error. What remains is text made by others: the DEBUG
logs of the libraries the backends drive (botocore prints signed headers, the
session token and endpoint URLs) and the messages of their exceptions. This
module hides secrets there:

- :func:`redact_url`: a URL without its ``user:password@`` part;
- :func:`redact_text`: any text with every registered secret and every
  credential-looking value (``Authorization`` and session-token headers, the
  access key id in a signature, bearer tokens, ``user:password@`` in URLs,
  secret-named fields of dict reprs and JSON) replaced by ``***``;
- :func:`register_secrets` and :func:`register_url`: values :func:`redact_text`
  always hides (a store registers its credentials when it is made);
- :func:`guard_loggers`: installs :class:`RedactingFilter` on the loggers of
  the libraries a backend drives, so their records leave redacted, whatever
  handler writes them.
"""

from __future__ import annotations

import logging
import re
import threading
import urllib.parse
from collections import OrderedDict

__all__ = [
    "MIN_SECRET_LENGTH",
    "RedactingFilter",
    "guard_loggers",
    "redact_text",
    "redact_url",
    "register_secrets",
    "register_url",
]

MASK = "***"

MIN_SECRET_LENGTH = 4
"""Registered values shorter than this are not looked for in text (they would blank out
ordinary words); the patterns still hide them where they appear as credentials."""

_MAX_SECRETS = 1024
"""Registered values kept (the oldest are forgotten: refreshed tokens pile up)."""

_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]*")

_QUOTED_NAME = (
    r"aws_secret_access_key|aws_session_token|aws_access_key_id|secret_access_key|"
    r"session_token|security_token|access_token|refresh_token|id_token|private_key|"
    r"private_key_id|client_secret|password|passwd|secret|token|assertion"
)

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Header values, as a line ("name: value"), a dict repr ('Name': b'value') or a query.
    (
        re.compile(
            r"(?i)((?:proxy-)?authorization['\"]?\s*[:=]\s*b?['\"]?)[^'\"\r\n]+",
        ),
        rf"\1{MASK}",
    ),
    (
        re.compile(
            r"(?i)((?:x-amz-security-token|x-goog-iam-authorization-token|x-amz-signature|"
            r"signature)['\"]?\s*[:=]\s*b?['\"]?)[^'\"\s&,;}]+",
        ),
        rf"\1{MASK}",
    ),
    # The access key id in a SigV4 credential scope (Credential=AKID/date/...).
    (re.compile(r"(?i)(credential=)[^/%\s'\",&]+"), rf"\1{MASK}"),
    # AWS access key ids wherever they stand.
    (re.compile(r"\b(?:AKIA|ASIA|AIDA|AROA)[A-Z0-9]{12,}\b"), MASK),
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=\-]+"), rf"\1{MASK}"),
    # Secret-named fields: 'aws_secret_access_key': 'x', "access_token": "x", password=x.
    (
        re.compile(rf"(?i)(['\"](?:{_QUOTED_NAME})['\"]\s*:\s*b?(['\"]))(?:[^'\"\\]|\\.)*"),
        rf"\1{MASK}",
    ),
    (re.compile(rf"(?i)\b((?:{_QUOTED_NAME})=)[^\s&,;'\")]+"), rf"\1{MASK}"),
)

_lock = threading.Lock()
_secrets: OrderedDict[str, None] = OrderedDict()
_secret_re: re.Pattern[str] | None = None


def _userinfo(url: str) -> tuple[str, str]:
    """``url``'s ``user:password`` (``""`` when none) and ``url`` without it.

    Works on malformed URLs too: it only looks for the last ``@`` between ``://``
    and the first ``/``, ``?`` or ``#`` after it.
    """
    scheme, sep, rest = url.partition("://")
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    userinfo, at, host = rest[:end].rpartition("@")
    if not (sep and at):
        return "", url
    return userinfo, f"{scheme}://{host}{rest[end:]}"


def redact_url(url: str) -> str:
    """``url`` without any ``user:password@`` part, for messages, reprs and logs."""
    return _userinfo(url)[1]


def register_secrets(*values: str | None) -> None:
    """Make :func:`redact_text` hide ``values`` (and their percent-encoded forms) from now on.

    ``None``, empty values and values shorter than :data:`MIN_SECRET_LENGTH` are skipped.
    """
    global _secret_re
    forms: list[str] = []
    for value in values:
        if value and len(value) >= MIN_SECRET_LENGTH:
            forms.append(value)
            forms.append(urllib.parse.quote(value, safe=""))
            forms.append(urllib.parse.quote_plus(value, safe=""))
    with _lock:
        new = [form for form in dict.fromkeys(forms) if form not in _secrets]
        if not new:
            return
        for form in new:
            _secrets[form] = None
        while len(_secrets) > _MAX_SECRETS:
            _secrets.popitem(last=False)
        longest_first = sorted(_secrets, key=len, reverse=True)
        _secret_re = re.compile("|".join(re.escape(s) for s in longest_first))


def register_url(url: str) -> None:
    """Make :func:`redact_text` hide the password of ``url``'s ``user:password@``, if any."""
    password = _userinfo(url)[0].partition(":")[2]
    register_secrets(password, urllib.parse.unquote(password))


def redact_text(text: str) -> str:
    """``text`` with registered secrets and credential-looking values replaced by ``***``."""
    secret_re = _secret_re
    if secret_re is not None:
        text = secret_re.sub(MASK, text)
    if "://" in text:
        text = _URL.sub(lambda m: redact_url(m.group(0)), text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites log records so that no secret leaves them (see :func:`redact_text`).

    The message is formatted first (records carry their arguments unformatted), so
    secrets in arguments are found too; a record that changed keeps the redacted
    text as its message and no arguments. A traceback attached to the record
    (``exc_info``) is formatted and redacted the same way; when it held a secret,
    only the redacted text stays (``exc_text``). Records are never dropped.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: logging reports it when it is written
            return True
        clean = redact_text(message)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            clean = redact_text(text)
            if clean != text:
                record.exc_info, record.exc_text = None, clean
        elif record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return True


_FILTER = RedactingFilter()


def guard_loggers(*names: str) -> None:
    """Install the redacting filter on the loggers ``names`` and every logger below them.

    A filter on a logger sees only the records logged on that very logger (not those
    of its children), so it goes on each existing one. Call this again after a library
    was imported or a client made, to cover loggers created since; it is idempotent.
    """
    manager = logging.Logger.manager
    for name in names:
        logging.getLogger(name)
    prefixes = tuple(f"{name}." for name in names)
    for name, logger in list(manager.loggerDict.items()):
        if not isinstance(logger, logging.Logger):
            continue  # a placeholder: no records come from it
        if (name in names or name.startswith(prefixes)) and _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
