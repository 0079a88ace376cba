"""Photos and videos by content hash: uploads from the workshop, downloads for staff (the customer's page
serves its own order's files through `media_response`)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, File, Response, UploadFile

from pitlane_events.types import ContentHash
from pitlane_platform.auth import CurrentPrincipal
from pitlane_platform.errors import InvalidInputError, NotFoundError
from pitlane_workorder.adapters import queries
from pitlane_workorder.entrypoints.http.common import Service, WorkorderContext, Workshop
from pitlane_workorder.entrypoints.http.responses import StoredMedia

ACCEPTED_MEDIA = re.compile(r"^(image|video)/[a-z0-9.+-]{1,64}$")

router = APIRouter(prefix="/v1", tags=["staff"])
BINARY = {"schema": {"type": "string", "format": "binary"}}
MEDIA_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The photo or video, as uploaded", "content": {"image/*": BINARY, "video/*": BINARY}}
}


@router.post("/branches/{branch_id}/media", status_code=201)
async def upload_media(
    branch_id: str,
    file: Annotated[UploadFile, File()],
    service: Service,
    principal: Workshop,
) -> StoredMedia:
    media_type = (file.content_type or "").lower()
    if not ACCEPTED_MEDIA.match(media_type):
        raise InvalidInputError(
            "body.file", f"only photos and videos are kept, not {media_type or 'unknown'}"
        )
    data = await file.read(service.max_upload_bytes + 1)
    if not data:
        raise InvalidInputError("body.file", "the file is empty")
    if len(data) > service.max_upload_bytes:
        raise InvalidInputError("body.file", f"larger than {service.max_upload_bytes} bytes")
    content_hash = await service.blobs.put(data, media_type)
    async with service.handlers.driver.transaction() as unit:
        await queries.add_media(unit, content_hash, media_type, len(data))
    return StoredMedia(content_hash=content_hash, media_type=media_type, size_bytes=len(data))


@router.get("/media/{content_hash}", response_class=Response, responses=MEDIA_RESPONSES)
async def download_media(
    content_hash: ContentHash, service: Service, principal: CurrentPrincipal
) -> Response:
    return await media_response(service, content_hash)


async def media_response(service: WorkorderContext, content_hash: str) -> Response:
    async with service.handlers.driver.transaction() as unit:
        stored = await queries.media(unit, [content_hash])
    media_type = stored[content_hash]["media_type"] if stored else None
    data = await service.blobs.get(content_hash) if media_type else None
    if media_type is None or data is None:
        raise NotFoundError(f"no file is stored under {content_hash}")
    # Content-addressed: the bytes under a hash never change, so clients may keep them for good.
    return Response(
        data, media_type=media_type, headers={"Cache-Control": "private, max-age=31536000, immutable"}
    )
