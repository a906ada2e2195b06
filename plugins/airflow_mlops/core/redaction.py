"""One redaction for every message that leaves a task: logs, errors, alerts. Plain Python, no Airflow.

A value is hidden when it follows a name that ends in password, secret, token or key (any case, any
separator: AIRFLOW_ADMIN_PASSWORD=..., jwt_secret: ..., "fernet-key": "...", ApiToken=...), and the
credentials of a URL (scheme://user:password@host). Airflow-side callers pass `on_secret`
(Airflow's `mask_secret`) so that a value found once is masked in the rest of the task log too.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

MASK = "***"
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/\s:@]+(?::[^/\s@]*)?)@")
# A name: letters, digits, '_' and '-' (not '.': `split.key: expected ...` is a config key, not a secret).
# It ends in password/secret/token/credential(s), in any case and after any prefix (ApiToken, JWT_SECRET);
# or in key after a separator or a camel-case hump (fernet-key, FERNET_KEY, apiKey), or in a known
# compound (apikey, secretkey, privatekey, accesskey); or it is authorization / passwd / pwd.
_NAME = (
    r"(?<![A-Za-z0-9_-])"
    r"(?:[A-Za-z0-9_-]*(?i:password|passwd|secret|token|credential)(?i:s)?"
    r"|[A-Za-z0-9_-]*(?:[_-](?i:key)|[a-z0-9]Key|KEY)(?i:s)?"
    r"|(?i:[a-z0-9_-]*(?:apikey|secretkey|privatekey|accesskey)s?)"
    r"|(?i:authorization|pwd))"
)
_SECRET_PAIRS = re.compile(
    rf"(?P<key>[\"']?{_NAME}[\"']?\s*[=:]\s*)"
    r"(?P<scheme>(?i:basic|bearer|token)\s+)?(?P<value>\"[^\"]*\"|'[^']*'|[^\s,;&'\"}\]]+)"
)


def redact(text: str, on_secret: Callable[[str], object] | None = None) -> str:
    """`text` without URL credentials and without the values of password=/jwt_secret:/ApiToken=/... pairs.

    Each hidden value (unquoted) is also handed to `on_secret`, e.g. Airflow's ``mask_secret``."""
    text = str(text)

    def url(match: re.Match[str]) -> str:
        password = match.group("userinfo").partition(":")[2]
        if password and on_secret is not None:
            on_secret(password)
        return f"{match.group('scheme')}{MASK}@"

    def pair(match: re.Match[str]) -> str:
        value = match.group("value")
        quote = value[0] if value[0] in "'\"" else ""
        secret = value[1:-1] if quote else value
        if secret and secret != MASK and on_secret is not None:
            on_secret(secret)
        return f"{match.group('key')}{match.group('scheme') or ''}{quote}{MASK}{quote}"

    return _SECRET_PAIRS.sub(pair, _URL_CREDENTIALS.sub(url, text))
