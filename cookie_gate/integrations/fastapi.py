"""FastAPI: the decision as a dependency, with nothing added to the OpenAPI schema.

    from cookie_gate.integrations.fastapi import ConsentDep

    @app.get("/")
    def index(consent: ConsentDep) -> dict[str, bool]:
        return {"analytics": consent.allows("analytics")}

`ConsentDep` is `Annotated[Consent, Depends(get_consent)]`; `get_consent` reads only the
request, so it declares no parameter of its own and the schema stays as it was.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from cookie_gate.consent import Consent
from cookie_gate.integrations import consent_from_scope

__all__ = ["ConsentDep", "get_consent"]


def get_consent(request: Request) -> Consent:
    """The visitor's decision (`consent: Consent = Depends(get_consent)`)."""
    return consent_from_scope(request.scope)


ConsentDep = Annotated[Consent, Depends(get_consent)]
