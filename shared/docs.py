"""`/docs` (Swagger UI) and `/redoc` (ReDoc) that work without internet access.

FastAPI's own pages load Swagger UI and ReDoc from a CDN (and ReDoc its fonts from Google),
so on an isolated government network they are blank. The same pages are served here with the
assets shipped in this package (`shared/static/docs/`, versions in
`shared/static/docs/README.md`), following FastAPI's "Custom Docs UI Static Assets
(Self-Hosting)" recipe.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

ASSETS_DIR = Path(__file__).parent / "static" / "docs"
ASSETS_PATH = "/docs-assets"
SWAGGER_UI_VERSION = "5.35.0"
REDOC_VERSION = "2.5.4"
# ReDoc's sidebar shows a logo fetched from Redocly's CDN, unconditionally. The vendored file
# stays as published (its digest is checked); the address is replaced when it is served, by an
# empty image, which ReDoc's own onError then hides.
REDOC_CDN_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"


def _redoc_bundle() -> bytes:
    bundle = (ASSETS_DIR / "redoc" / "redoc.standalone.js").read_bytes()
    return bundle.replace(REDOC_CDN_LOGO, b"data:,")


def install_offline_docs(app: FastAPI) -> None:
    """Replace the app's `/docs` and `/redoc` with pages whose every asset is local."""
    if app.openapi_url is None:
        return
    docs_url = app.docs_url
    redoc_url = app.redoc_url
    app.router.routes = [
        r for r in app.router.routes if getattr(r, "path", None) not in (docs_url, redoc_url)
    ]
    swagger = f"{ASSETS_PATH}/swagger-ui"
    redoc = f"{ASSETS_PATH}/redoc"
    bundle: list[bytes] = []

    # Before the mount, which would otherwise serve the file as it is.
    @app.get(f"{redoc}/redoc.standalone.js", include_in_schema=False)
    async def redoc_js() -> Response:
        if not bundle:
            bundle.append(_redoc_bundle())
        return Response(
            bundle[0],
            media_type="text/javascript",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    app.mount(ASSETS_PATH, StaticFiles(directory=ASSETS_DIR), name="docs-assets")

    if docs_url:

        @app.get(docs_url, include_in_schema=False)
        async def swagger_ui(request: Request) -> HTMLResponse:
            root = request.scope.get("root_path", "").rstrip("/")
            return get_swagger_ui_html(
                # Read at request time: a later hook may move or replace the document.
                openapi_url=root + (request.app.openapi_url or "/openapi.json"),
                title=f"{app.title} - Swagger UI",
                swagger_js_url=f"{root}{swagger}/swagger-ui-bundle.js?v={SWAGGER_UI_VERSION}",
                swagger_css_url=f"{root}{swagger}/swagger-ui.css?v={SWAGGER_UI_VERSION}",
                swagger_favicon_url=f"{root}{swagger}/favicon-32x32.png",
                oauth2_redirect_url=app.swagger_ui_oauth2_redirect_url,
                init_oauth=app.swagger_ui_init_oauth,
                # No badge from the public validator service: it would call out.
                swagger_ui_parameters={**(app.swagger_ui_parameters or {}), "validatorUrl": None},
            )

    if redoc_url:

        @app.get(redoc_url, include_in_schema=False)
        async def redoc_ui(request: Request) -> HTMLResponse:
            root = request.scope.get("root_path", "").rstrip("/")
            return get_redoc_html(
                openapi_url=root + (request.app.openapi_url or "/openapi.json"),
                title=f"{app.title} - ReDoc",
                redoc_js_url=f"{root}{redoc}/redoc.standalone.js?v={REDOC_VERSION}",
                redoc_favicon_url=f"{root}{swagger}/favicon-32x32.png",
                with_google_fonts=False,
            )
