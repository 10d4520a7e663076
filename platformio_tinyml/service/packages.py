"""Packages for pull delivery over HTTP, beside the LwM2M server's ``coap://.../pkg/<sha256>``.

``POST /v1/packages`` (``deploy`` scope) publishes the request body and
answers its sha256 and both pull URIs; ``GET /v1/packages/<sha256>`` serves a
published package to anyone who knows its digest (a device pulling has no
token; the digest names the content, and nothing unpublished is served).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, Response

from ..lwm2m.packages import DIGEST
from .auth import Caller
from .deps import caller
from .inputs import fail
from .schemas import errors

router = APIRouter(prefix="/v1/packages", tags=["packages"])


def _packages(request: Request):
    server = getattr(request.app.state, "lwm2m", None)
    if server is None:
        raise fail(409, "the LwM2M server is disabled (--lwm2m-port 0). Start tinyml serve with --lwm2m-port")
    return server


@router.post("", responses=errors(400, 401, 403, 409, 413))
async def publish_package(request: Request, who: Caller = Depends(caller("deploy"))) -> dict:
    """Publish the body (octet-stream) for pull delivery: its sha256, size, coap_uri and http_uri.

    ``coap_uri`` is served block-wise (Block2) from the LwM2M server's socket, ``http_uri`` by this API."""
    server = _packages(request)
    data = await request.body()
    if not data:
        raise fail(400, "empty package: send its bytes as the request body (application/octet-stream)")
    digest = server.packages.publish(data)
    return {"sha256": digest, "size": len(data), "coap_uri": server.package_uri(digest),
            "http_uri": str(request.url_for("get_package", digest=digest))}


_BYTES = {"content": {"application/octet-stream": {}}}


@router.get("/{digest}", response_class=Response, responses={**errors(404, 409), 200: _BYTES, 206: _BYTES})
def get_package(digest: str, request: Request) -> Response:
    """A published package's bytes; no token needed; a Range header resumes a cut download."""
    packages = _packages(request).packages
    headers = {"ETag": f'"{digest}"'}
    path = packages.file(digest) if DIGEST.match(digest) else None
    if path is not None:          # from the blob store: Starlette answers Range requests (206)
        return FileResponse(path, media_type="application/octet-stream", headers=headers)
    data = packages.get(digest) if DIGEST.match(digest) else None
    if data is None:
        raise fail(404, f"no published package '{digest[:70]}' (a package's name is the sha256 of its bytes)")
    return Response(data, media_type="application/octet-stream", headers=headers)
