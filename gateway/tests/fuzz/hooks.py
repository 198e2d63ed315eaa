"""Schemathesis hooks for the gateway's fuzz test (gateway/tests/api/fuzz.rs), loaded through
SCHEMATHESIS_HOOKS: the fleet's own check that every error is a problem document (RFC 9457)."""

import json

import schemathesis

PROBLEM_CONTENT_TYPE = "application/problem+json"


@schemathesis.check
def error_is_a_problem_document(ctx, response, case):
    """Every 4xx and 5xx answer is `application/problem+json` with `type`, `title` and `status`,
    the status being the response's own."""
    status = response.status_code
    if status < 400:
        return None
    if case.operation.label == "POST /api/v1/auth/token" and (
            status == 400 or (status == 401 and b'"invalid_client"' in response.content)):
        # The OAuth2 token endpoint answers its errors as RFC 6749 §5.2 requires (JSON with
        # `error`; 401 for a client that failed to authenticate), which OAuth clients read; the
        # document says so, and the schema checks hold it to that. The gateway's own answers
        # there (429, 502, …) are still problems.
        return None
    content_types = response.headers.get("content-type", [])
    content_type = content_types[0].split(";")[0].strip().lower() if content_types else None
    if content_type != PROBLEM_CONTENT_TYPE:
        raise AssertionError(
            f"{status} answered with Content-Type {content_type!r}, not {PROBLEM_CONTENT_TYPE!r}: "
            f"{response.content[:200]!r}"
        )
    try:
        problem = json.loads(response.content)
    except ValueError as error:
        raise AssertionError(f"{status} answered with a body that is not JSON: {error}") from None
    if not isinstance(problem, dict):
        raise AssertionError(f"{status} answered with a problem that is not an object: {problem!r}")
    for field in ("type", "title"):
        if not isinstance(problem.get(field), str) or not problem[field]:
            raise AssertionError(f"{status} answered with a problem without a {field!r}: {problem!r}")
    if problem.get("status") != status:
        raise AssertionError(
            f"{status} answered with a problem whose status is {problem.get('status')!r}: {problem!r}"
        )
    return None
