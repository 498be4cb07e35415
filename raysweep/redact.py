"""Secrets out of what raysweep prints and logs.

A storage URI may carry credentials in its query string (``s3://b/p?access_key=AK&secret_key=SK``) and a
tracking URI in its user info (``http://user:password@host``). :func:`redact` masks them in any text (a
URI, a YAML dump, an error message):

- user info: over http(s), the password of ``user:password@`` and a lone ``token@``; in other schemes
  (``s3://KEY:SECRET@bucket``) both parts of ``a:b@``, while a lone name stays (``abfs://container@acct``);
- the value of every query parameter whose name says secret (``*key*``, ``*secret*``, ``*token*``,
  ``*password*``, ``*credential*``, ``*signature*``, ``sig``, ``*auth*``, ...).

Everything else (bucket, path, ``endpoint_override``, host, user name) stays readable. Pure functions; the
real values stay where raysweep connects with them (the config it validates, the job files its workers read).
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"

_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<info>[^\s/?#'\"@]*(?:@[^\s/?#'\"@]*)*)@")
_SECRET_PARAM = re.compile(
    r"(?P<lead>[?&;](?P<name>[A-Za-z0-9_.\-]*(?:secret|passw|pwd|token|key|credential|signature|sig|auth|"
    r"session|cookie|bearer)[A-Za-z0-9_.\-]*)=)(?P<value>[^&;\s#'\"]*)",
    re.IGNORECASE)


def _mask_userinfo(m: re.Match) -> str:
    scheme, (user, sep, _) = m.group("scheme"), m.group("info").partition(":")
    web = scheme.lower().startswith(("http", "ws"))
    if sep:
        return f"{scheme}{user if web else MASK}:{MASK}@"
    return f"{scheme}{MASK if web else user}@"


def redact(text: str) -> str:
    """``text`` with the credentials of every URI in it masked (idempotent; other text unchanged)."""
    if not isinstance(text, str) or ("://" not in text and "=" not in text):
        return text
    text = _USERINFO.sub(_mask_userinfo, text)
    return _SECRET_PARAM.sub(lambda m: m.group("lead") + (MASK if m.group("value") else ""), text)


def redact_obj(obj: Any) -> Any:
    """:func:`redact` applied to every string in nested dicts, lists and tuples (keys too)."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {redact_obj(k): redact_obj(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(redact_obj(v) for v in obj)
    return obj


def split_userinfo(uri: str) -> tuple[str, str | None, str | None]:
    """``http://u:p@host/x`` -> (``http://host/x``, ``u``, ``p``); a URI without user info -> (uri, None, None)."""
    m = _USERINFO.match(uri)
    if m is None:
        return uri, None, None
    user, sep, password = m.group("info").partition(":")
    return m.group("scheme") + uri[m.end():], user, password if sep else None
