"""Field-level deltas (`"delta": true` subscriptions): the server sends a JSON
merge patch (RFC 7386) against the previous value; this module merges it back
so that callers always see whole values, as tickerd.js does.
"""

from typing import Any


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """The value `patch` (RFC 7386) makes of `target`; neither is modified.

    A `None` member of the patch deletes that field; a patch that is not an
    object replaces the value whole.
    """
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result
