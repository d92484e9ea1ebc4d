"""The web app of ``cnnlab explore``: a JSON API over :class:`~cnnlab.explore.engine.Explorer` and the page.

``create_app(saved_model, run_dir)`` returns a Starlette application (needs
the ``explore`` extra: ``pip install "cnnlab[explore]"``).  Every number on the
page comes from these endpoints; the page never computes a layer itself.

Images reach the API as a multipart field ``image`` (an uploaded, dropped or
drawn file) or as JSON ``{"sample": k}`` (the k-th test image of the run);
``invert`` (form field, JSON key or query parameter) flips gray levels first.
Bad requests get a 4xx answer ``{"error": "..."}``; no file path is taken from
a client.  Only the server's own page may call it: a request whose ``Host`` is not
the server's name (DNS rebinding) or whose ``Origin`` is another site (a web page
posting to it) gets 403.  Every number a client sends is bounded, and the
computing runs in a worker thread, never on the event loop.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from .engine import MAX_UPLOAD_BYTES, Explorer, RequestError, shape_arithmetic

__all__ = ["create_app", "STATIC_DIR", "LOCAL_HOSTS", "MAX_INDEX", "MAX_PADDING"]

STATIC_DIR = Path(__file__).resolve().parent / "static"
#: the names a server on this machine answers to (``Host``/``Origin``); a server listening on another
#: address also answers to that address
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
#: the largest channel, row, column, class or sample index a request may name (each is then checked
#: against the model's real sizes)
MAX_INDEX = 1 << 20
#: the most padding per side the shape playground takes
MAX_PADDING = 10_000


def _host_name(netloc: str) -> str:
    """``"127.0.0.1:8000"`` -> ``"127.0.0.1"``, ``"[::1]:80"`` -> ``"::1"`` (lower case)."""
    netloc = netloc.strip().lower()
    if netloc.startswith("["):
        return netloc[1:netloc.find("]")] if "]" in netloc else netloc
    return netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc


class _SameOrigin:
    """ASGI middleware: 403 unless ``Host`` names this server and ``Origin`` (when sent) is this server.

    ``allowed_hosts`` ``None`` accepts any ``Host`` (a server listening on every address) but still
    refuses an ``Origin`` other than the ``Host`` the request was sent to."""

    def __init__(self, app, allowed_hosts):
        self.app = app
        self.allowed = None if allowed_hosts is None else {h.strip("[]").lower() for h in allowed_hosts}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host, origin = headers.get("host", ""), headers.get("origin")
        problem = None
        if not host or (self.allowed is not None and _host_name(host) not in self.allowed):
            problem = (f"requests must be addressed to this server ({', '.join(sorted(self.allowed or ()))}), "
                       f"got Host {host!r}")
        elif origin is not None:
            from urllib.parse import urlsplit
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or parts.netloc.lower() != host.strip().lower():
                problem = (f"cross-origin request refused: Origin {origin!r} is not this server "
                           f"(http://{host}); only the explorer's own page may call its API")
        if problem is None:
            return await self.app(scope, receive, send)
        from starlette.responses import JSONResponse
        await JSONResponse({"error": problem}, status_code=403)(scope, receive, send)


def _int(params, name: str, default=None, low: Optional[int] = None, high: Optional[int] = None):
    text = params.get(name)
    if text is None or text == "":
        if default is None:
            raise RequestError(f"missing query parameter {name!r}")
        return default
    if isinstance(text, bool) or not isinstance(text, (int, str)) or len(str(text)) > 20:
        shown = repr(text) if len(repr(text)) <= 40 else repr(text)[:40] + "..."
        raise RequestError(f"{name} must be an integer, got {shown}")
    try:
        value = int(text)
    except ValueError:
        raise RequestError(f"{name} must be an integer, got {text!r}") from None
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = (f"between {low} and {high}" if low is not None and high is not None
                  else f"at least {low}" if low is not None else f"at most {high}")
        raise RequestError(f"{name} must be {bounds}, got {value}")
    return value


def _flag(value) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def create_app(saved_model, run_dir=None, max_upload_bytes: int = MAX_UPLOAD_BYTES, engine: str = "cnnlab",
               allowed_hosts=LOCAL_HOSTS):
    """The Starlette app serving the page and the API for one model.

    Args:
        saved_model: a :class:`cnnlab.io.SavedModel` (``cnnlab.io.load_model`` or
            :func:`cnnlab.explore.engine.load_target` gives one), or an :class:`Explorer`.
        run_dir: the run directory (history, metrics, test images), or None.
        max_upload_bytes: largest request body accepted.
        engine: ``"cnnlab"`` or ``"onnxruntime"`` (the live prediction runs in ONNX Runtime; every
            feature map and trace is still cnnlab's own computation).
        allowed_hosts: the host names requests may be addressed to (``Host`` header); ``None``: any
            (a server listening on every address).  A request with an ``Origin`` other than the
            server itself is refused either way.
    """
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    explorer = saved_model if isinstance(saved_model, Explorer) else Explorer(saved_model, run_dir, engine)

    def error(message: str, status: int = 400):
        return JSONResponse({"error": message}, status_code=status)

    def endpoint(fn):
        async def wrapped(request: Request):
            try:
                return await fn(request)
            except RequestError as exc:
                return error(str(exc), exc.status)
            except (ValueError, TypeError) as exc:
                return error(" ".join(str(exc).split()) or type(exc).__name__, 400)
            except Exception as exc:  # noqa: BLE001 - the server keeps serving; the client gets JSON
                return error(f"internal error ({type(exc).__name__}): {' '.join(str(exc).split())}", 500)
        return wrapped

    async def read_body(request: Request) -> bytes:
        length = request.headers.get("content-length")
        if length is not None:
            try:
                if int(length) > max_upload_bytes:
                    raise RequestError(f"request body of {int(length):,} bytes is over the limit of "
                                       f"{max_upload_bytes:,} bytes", 413)
            except ValueError:
                raise RequestError(f"bad Content-Length {length!r}") from None
        chunks, total = [], 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > max_upload_bytes:
                raise RequestError(f"request body over the limit of {max_upload_bytes:,} bytes", 413)
            chunks.append(chunk)
        body = b"".join(chunks)
        request._body = body  # later request.form() parses these bytes
        return body

    async def read_image(request: Request):
        """The request's image, prepared for the model (runs in the thread pool)."""
        body = await read_body(request)
        ctype = request.headers.get("content-type", "")
        invert = _flag(request.query_params.get("invert", "0"))
        if ctype.startswith("multipart/form-data"):
            try:
                form = await request.form(max_files=1, max_fields=20)
            except Exception as exc:  # noqa: BLE001 - malformed multipart
                raise RequestError(f"cannot parse the multipart form: {exc}") from None
            upload = form.get("image")
            if "invert" in form:
                invert = _flag(form.get("invert"))
            if upload is None or isinstance(upload, str):
                if "sample" in form:
                    return await run_in_threadpool(explorer.prepare_sample, _int(form, "sample", low=0,
                                                                                 high=MAX_INDEX), invert)
                raise RequestError("expected a file field named 'image' (multipart/form-data) or JSON "
                                   "{\"sample\": k}")
            data = await upload.read()
            await form.close()
            return await run_in_threadpool(explorer.prepare_upload, data, invert)
        if ctype.startswith("application/json") or (body[:1] == b"{"):
            try:
                doc = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as exc:
                raise RequestError(f"the body is not valid JSON: {exc}") from None
            if not isinstance(doc, dict) or "sample" not in doc:
                raise RequestError("expected JSON {\"sample\": k} (the k-th test image) or a multipart field "
                                   "'image'")
            if "invert" in doc:
                invert = _flag(doc["invert"])
            return await run_in_threadpool(explorer.prepare_sample, doc["sample"], invert)
        if not body and "sample" in request.query_params:
            return await run_in_threadpool(explorer.prepare_sample,
                                           _int(request.query_params, "sample", low=0, high=MAX_INDEX), invert)
        raise RequestError("expected a multipart/form-data body with a file field 'image', or JSON "
                           "{\"sample\": k}", 415 if body else 400)

    # ------------------------------------------------------------------ endpoints
    async def index(request: Request):
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    async def api_model(request: Request):
        return JSONResponse(await run_in_threadpool(explorer.model_info))

    async def api_predict(request: Request):
        img = await read_image(request)
        maps = _flag(request.query_params.get("maps", "0"))
        if not maps and explorer.fast is not None:  # --engine onnxruntime: the prediction alone
            return JSONResponse(await run_in_threadpool(explorer.quick_prediction, img))
        fw = await run_in_threadpool(explorer.forward, img)
        return JSONResponse(await run_in_threadpool(explorer.prediction, fw, maps))

    async def api_trace(request: Request):
        q = request.query_params
        layer = q.get("layer")
        if not layer:
            raise RequestError("missing query parameter 'layer'")
        if layer != "probabilities":
            explorer.layer_info(layer)
        channel, y, x = (_int(q, name, 0, 0, MAX_INDEX) for name in ("channel", "y", "x"))
        img = await read_image(request)
        fw = await run_in_threadpool(explorer.forward, img)
        return JSONResponse(await run_in_threadpool(explorer.trace, fw, layer, channel, y, x))

    async def api_explain(request: Request):
        q = request.query_params
        method = q.get("method", "gradcam").lower().replace("-", "")
        target = q.get("class")
        target = None if target in (None, "", "predicted") else _int(q, "class", low=0, high=MAX_INDEX)
        img = await read_image(request)
        return JSONResponse(await run_in_threadpool(explorer.explain, img, method, target))

    async def api_featuremap(request: Request):
        q = request.query_params
        layer = q.get("layer") or ""
        explorer.layer_info(layer)
        channel, scale = _int(q, "channel", 0, 0, MAX_INDEX), _int(q, "scale", 1, 1, 16)
        img = await read_image(request)
        fw = await run_in_threadpool(explorer.forward, img)
        png = await run_in_threadpool(explorer.feature_png, fw, layer, channel, scale)
        return Response(png, media_type="image/png")

    async def api_kernels(request: Request):
        return JSONResponse(await run_in_threadpool(explorer.kernels, request.query_params.get("layer") or ""))

    async def api_samples(request: Request):
        q = request.query_params

        def cls(name):
            text = q.get(name)
            if text in (None, ""):
                return None
            if text in explorer.classes:
                return explorer.classes.index(text)
            return _int(q, name, low=0, high=len(explorer.classes) - 1)
        result = await run_in_threadpool(explorer.samples, cls("class"), cls("predicted"),
                                         _flag(q.get("wrong", "0")), _int(q, "limit", 200, 1, 10000))
        return JSONResponse(result)

    async def api_sample_png(request: Request):
        k = request.path_params["k"]
        scale = _int(request.query_params, "scale", 1, 1, 16)
        return Response(await run_in_threadpool(explorer.sample_png, k, scale), media_type="image/png")

    async def api_run(request: Request):
        return JSONResponse(await run_in_threadpool(explorer.run_info))

    async def api_shape(request: Request):
        q = request.query_params
        padding = str(q.get("padding", "0"))
        if len(padding) > 40:
            raise RequestError(f"padding must be an integer, 'before,after' or 'same', got {padding[:40]!r}...")
        return JSONResponse(await run_in_threadpool(
            shape_arithmetic, _int(q, "size", low=1, high=100000), _int(q, "kernel", low=1, high=10000),
            _int(q, "stride", 1, 1, 10000), padding, _int(q, "dilation", 1, 1, 1000),
            _flag(q.get("ceil_mode", "0")), _flag(q.get("pool", "0")), MAX_PADDING))

    async def not_found(request: Request, exc):
        if request.url.path.startswith("/api/"):
            return error(f"no such API endpoint: {request.method} {request.url.path}", 404)
        return error(f"not found: {request.url.path}", 404)

    async def method_not_allowed(request: Request, exc):
        return error(f"method {request.method} is not allowed for {request.url.path}", 405)

    routes = [
        Route("/", index),
        Route("/api/model", endpoint(api_model), methods=["GET"]),
        Route("/api/predict", endpoint(api_predict), methods=["POST"]),
        Route("/api/trace", endpoint(api_trace), methods=["POST"]),
        Route("/api/explain", endpoint(api_explain), methods=["POST"]),
        Route("/api/featuremap", endpoint(api_featuremap), methods=["POST"]),
        Route("/api/kernels", endpoint(api_kernels), methods=["GET"]),
        Route("/api/samples", endpoint(api_samples), methods=["GET"]),
        Route("/api/samples/{k:int}.png", endpoint(api_sample_png), methods=["GET"]),
        Route("/api/run", endpoint(api_run), methods=["GET"]),
        Route("/api/shape", endpoint(api_shape), methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=str(STATIC_DIR)), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: method_not_allowed})
    app.state.explorer = explorer
    app.add_middleware(_SameOrigin, allowed_hosts=allowed_hosts)
    return app
