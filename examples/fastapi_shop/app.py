"""FastAPI behind cookie_gate: `scripts/example fastapi`; the decision through the `ConsentDep` dependency."""

from __future__ import annotations

from fastapi import FastAPI, Response
from fastapi.responses import HTMLResponse

from cookie_gate import CookieGateMiddleware
from cookie_gate.integrations.fastapi import ConsentDep

app = FastAPI(title="FastAPI shop")


@app.get("/", response_class=HTMLResponse)
def shop(consent: ConsentDep, response: Response) -> str:
    response.set_cookie("cart", "0", httponly=True)  # unknown to the catalogue: necessary by default
    response.set_cookie("_ga", "GA1.1.example", max_age=34560000)
    allowed = "allowed" if consent.allows("analytics") else "refused"
    return f"<!doctype html><html><body><h1>FastAPI shop</h1><p>Analytics: {allowed}.</p></body></html>"


@app.get("/api/consent")
def decision(consent: ConsentDep) -> dict[str, object]:
    return {"decided": consent.decided, "categories": sorted(consent.categories)}


# Added last, so it is the outermost layer; secret and store come from the environment.
app.add_middleware(CookieGateMiddleware)
