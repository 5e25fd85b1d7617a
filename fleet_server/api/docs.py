"""`/docs` served entirely by this server. FastAPI's default page loads Swagger UI from a CDN, so on a site with no
internet access (common for an edge fleet's control plane) it was blank. The assets come from the
`swagger-ui-bundle-v2` package (Swagger UI 5, which reads the OpenAPI 3.1 schema FastAPI writes; the older
`swagger-ui-bundle` ships Swagger UI 4, which cannot). Without that package `/docs` is a plain local page listing
the operations and pointing at `/openapi.json`: never a page that fetches from elsewhere.
"""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/docs"
ASSETS_URL = "/docs/assets"
OPENAPI_URL = "/openapi.json"


def swagger_assets() -> Path | None:
    """Where the installed Swagger UI files are, or None when the package is missing."""
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        return None
    path = Path(str(swagger_ui_path))
    return path if (path / "swagger-ui-bundle.js").is_file() else None


def install(app: FastAPI) -> None:
    """Serve `/docs` (create the app with `docs_url=None, redoc_url=None` so FastAPI's CDN pages are not)."""
    assets = swagger_assets()
    if assets is not None:
        app.mount(ASSETS_URL, StaticFiles(directory=assets), name="swagger-ui")

    @app.get(DOCS_URL, include_in_schema=False)
    def docs() -> HTMLResponse:
        if assets is None:
            return HTMLResponse(_plain_page(app))
        return get_swagger_ui_html(openapi_url=OPENAPI_URL, title=f"{app.title} - API",
                                   swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
                                   swagger_favicon_url=f"{ASSETS_URL}/favicon-32x32.png")


def _plain_page(app: FastAPI) -> str:
    rows = []
    for path, operations in app.openapi().get("paths", {}).items():
        for method, op in operations.items():
            rows.append(f"<tr><td>{html.escape(method.upper())}</td><td><code>{html.escape(path)}</code></td>"
                        f"<td>{html.escape(op.get('summary', ''))}</td></tr>")
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(app.title)} - API"
            "</title></head><body style='font-family:system-ui,sans-serif;margin:2rem'>"
            f"<h1>{html.escape(app.title)} - API</h1><p>The interactive page needs the <code>swagger-ui-bundle-v2"
            "</code> package (part of <code>edgefleet[server]</code>). The full schema is at "
            f"<a href='{OPENAPI_URL}'>{OPENAPI_URL}</a>.</p><table>{''.join(rows)}</table></body></html>")
