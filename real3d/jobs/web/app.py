"""`real3d serve`: a local web app to generate and browse models, with no network (issue #22).

    real3d serve                      # http://127.0.0.1:7860, runs in ./outputs
    real3d serve --host 0.0.0.0 --port 8000 --outputs /data/runs

A small ASGI app (Starlette on uvicorn) over the same run folders the CLI writes. Everything the pages use is
served by the app itself: its own HTML, script and style, and the model viewer (Google's <model-viewer>,
vendored in static/). The pages build all text with textContent and the app sends a Content-Security-Policy
that allows no inline script, so a prompt like <script>…</script> is only ever shown. File routes serve
files inside a run folder only; a request that changes state must come from the app's own page (Origin).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import socket
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from ... import config as config_lib
from ...errors import UserError, one_line
from ..args import int_in
from .runs import Runs, generate_presets

STATIC = Path(__file__).resolve().parent / "static"
ZIP_FILES = ("model.obj", "model.mtl", "model.png")  # what Blender's OBJ import needs
CSP = (
    # wasm-unsafe-eval: the viewer compiles WebAssembly (no JavaScript eval is allowed)
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; media-src 'self'; connect-src 'self' data: blob:; worker-src 'self' blob:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def create_app(outputs: Path, runs: Runs | None = None) -> Any:
    """The ASGI app over `outputs` (a Starlette instance; `runs` for tests that bring their own queue)."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    queue = runs or Runs(outputs)

    def error(message: str, status: int = 400) -> JSONResponse:
        return JSONResponse({"error": one_line(message)}, status_code=status)

    def page(request: Request) -> Response:
        """The one page of the app: its script shows the form, queue and gallery at /, a run at /run/NAME."""
        return FileResponse(STATIC / "app.html", headers={"Cache-Control": "no-store"})

    async def start(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return error("send the form as JSON")
        if not isinstance(body, dict) or not all(isinstance(v, str) for v in body.values()):
            return error("send the form as JSON with string fields")
        names = queue.submit(
            body.get("prompt", ""),
            body.get("preset", "real3d"),
            body.get("seeds", "0"),
            body.get("overrides", ""),
            body.get("budget", ""),
        )
        return JSONResponse({"runs": names})

    def file(request: Request) -> Response:
        folder = queue.folder(request.path_params["name"]).resolve()
        path = (folder / request.path_params["path"]).resolve()
        if not path.is_relative_to(folder) or not path.is_file() or path.name == "checkpoint.pt":
            return error("no such file in this run", 404)
        return FileResponse(path, headers={"Cache-Control": "no-store"})

    def thumbnail(request: Request) -> Response:
        """The second of the 12 judge views, azimuth 30° (views.png is a 12 × 1 contact sheet of square views)."""
        from PIL import Image

        path = queue.folder(request.path_params["name"]) / "views.png"
        if not path.is_file():
            return error("no views yet", 404)
        image = Image.open(path)
        side = image.height
        buffer = io.BytesIO()
        image.crop((side, 0, 2 * side, side)).save(buffer, "PNG")
        return Response(buffer.getvalue(), media_type="image/png")

    def download(request: Request) -> Response:
        """OBJ + MTL + texture PNG in one zip, named after the run."""
        name = request.path_params["name"]
        folder = queue.folder(name)
        missing = [f for f in ZIP_FILES if not (folder / f).is_file()]
        if missing:
            return error(f"run {name!r} has no {', '.join(missing)} yet", 404)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
            for f in ZIP_FILES:
                z.write(folder / f, f"{name}/{f}")
        disposition = f'attachment; filename="{name}-obj.zip"'
        return Response(buffer.getvalue(), media_type="application/zip", headers={"Content-Disposition": disposition})

    routes = [
        Route("/", page),
        Route("/run/{name}", page),
        Route("/api/presets", lambda r: JSONResponse({"presets": generate_presets(), "budgets": config_lib.budgets()})),
        Route("/api/runs", start, methods=["POST"]),
        Route("/api/queue", lambda r: JSONResponse({"queue": queue.queue()})),
        Route("/api/gallery", lambda r: JSONResponse({"runs": queue.gallery()})),
        Route("/api/runs/{name}", lambda r: JSONResponse(queue.status(r.path_params["name"]))),
        Route("/api/runs/{name}/cancel", lambda r: JSONResponse(queue.cancel(r.path_params["name"])), methods=["POST"]),
        Route("/api/runs/{name}/resume", lambda r: JSONResponse(queue.resume(r.path_params["name"])), methods=["POST"]),
        Route("/files/{name}/{path:path}", file),
        Route("/thumb/{name}", thumbnail),
        Route("/download/{name}-obj.zip", download),
        Mount("/static", StaticFiles(directory=STATIC)),
    ]

    async def user_error(request: Request, exc: Exception) -> Response:
        missing = "no run named" in str(exc)
        return error(str(exc), 404 if missing else 400)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        yield
        queue.close()  # a running run gets Ctrl-C and keeps its checkpoint

    return Starlette(
        routes=routes,
        exception_handlers={UserError: user_error},
        middleware=[Middleware(Guard)],
        lifespan=lifespan,
        max_body_size=64 * 1024,
    )


class Guard:
    """ASGI middleware: security headers on every response; a request that changes state (POST) only from the
    app's own pages (its Origin, when the browser sends one, is the Host it was sent to), so another site open
    in the same browser cannot start or cancel runs."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        origin, host = headers.get("origin"), headers.get("host", "")
        if scope["method"] not in ("GET", "HEAD") and origin is not None and origin.split("://", 1)[-1] != host:
            from starlette.responses import JSONResponse

            refused = JSONResponse({"error": "requests that change runs come from this app's own page"}, 403)
            return await refused(scope, receive, send)

        async def secured(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                ]
            await send(message)

        await self.app(scope, receive, secured)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    check_port(args.host, args.port)
    app = create_app(args.outputs)
    where = f"http://{args.host}:{args.port}"
    print(f"real3d serve: {where} (runs in {args.outputs.resolve()}; Ctrl-C stops the server)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def check_port(host: str, port: int) -> None:
    """A port that is taken, or a host that is not an address of this machine, is one line before any start."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(infos[0][4])
    except OSError as e:
        raise UserError(f"cannot listen on {host}:{port}: {e.strerror or e}; choose another --host or --port") from e


def add_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="a local web app: generate from a prompt, watch, orbit and download models")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int_in(1, 65535), default=7860, help="port (default 7860)")
    p.add_argument("--outputs", type=Path, default=Path("outputs"), help="the runs' folder (default outputs)")
    p.set_defaults(func=run)
