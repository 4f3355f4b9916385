"""OpenAPI document and Swagger UI, behind a key like every other route."""

from __future__ import annotations

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from modelport.api.auth import require
from modelport.types import Principal, Scope

router = APIRouter(include_in_schema=False)

SWAGGER_JS = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"
SWAGGER_CSS = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"


@router.get("/openapi.json")
async def openapi(request: Request, _: Principal = require(Scope.PREDICT)) -> Response:
    return Response(orjson.dumps(request.app.openapi()), media_type="application/json")


@router.get("/docs")
async def swagger_ui(request: Request, _: Principal = require(Scope.PREDICT)) -> HTMLResponse:
    # The document is inlined: the browser could not fetch it without the key.
    spec = orjson.dumps(request.app.openapi()).decode().replace("</", "<\\/")
    return HTMLResponse(
        f"""<!doctype html><html><head><title>ModelPort API</title>
<link rel="stylesheet" href="{SWAGGER_CSS}"></head><body><div id="swagger-ui"></div>
<script src="{SWAGGER_JS}"></script>
<script>SwaggerUIBundle({{spec: {spec}, dom_id: "#swagger-ui"}});</script></body></html>"""
    )
