"""What the client reads of a JWT: its `exp`, to refresh the token before the
server closes the connection with 4001 (the signature is the server's business).
"""

import base64
import json
from typing import Optional


def jwt_expiry(token: Optional[str]) -> Optional[float]:
    """The `exp` claim (seconds since the Unix epoch) of a JWT, read without
    verifying; None when `token` is not a JWT or has no numeric `exp`."""
    if not isinstance(token, str):
        return None
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, TypeError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, bool) or not isinstance(exp, (int, float)):
        return None
    return float(exp)
