"""Photos and videos by content hash: uploads from the workshop, downloads for the staff of the branch that
uploaded them (the customer's page serves its own order's files through `media_response`).

What a file is, is read from its bytes (`filetype`'s magic numbers), never from the type the client declares:
an SVG or HTML page sent as `image/jpeg` is not a photo and would run script where it is opened. Files are
served with the type their content was found to be, `nosniff` and a `Content-Disposition`, so a browser
neither guesses another type nor renders them as a page of ours."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Annotated, Any

import filetype  # type: ignore[import-untyped]
from fastapi import APIRouter, Depends, File, Response, UploadFile

from pitlane_events.types import ContentHash
from pitlane_platform.auth import Principal, Role, require_roles
from pitlane_platform.errors import InvalidInputError, NotFoundError
from pitlane_workorder.adapters import queries
from pitlane_workorder.entrypoints.http.common import Service, WorkorderContext, Workshop
from pitlane_workorder.entrypoints.http.responses import StoredMedia

router = APIRouter(prefix="/v1", tags=["staff"])
BINARY = {"schema": {"type": "string", "format": "binary"}}
MEDIA_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The photo or video, as uploaded",
        "content": {"image/*": BINARY, "video/*": BINARY},
        "headers": {
            "X-Content-Type-Options": {"schema": {"type": "string", "enum": ["nosniff"]}},
            "Content-Disposition": {"schema": {"type": "string"}},
        },
    }
}
# Analysts see figures, not the photos of customers' cars.
MediaReader = Annotated[
    Principal, Depends(require_roles(*(role for role in Role if role is not Role.ANALYST)))
]
MayRead = Callable[[str], bool]


def photo_or_video(data: bytes) -> str:
    """The media type the bytes are, or a 422 naming the file when they are neither a photo nor a video."""
    kind = filetype.guess(data)
    mime = kind.mime if kind is not None else None
    if mime is None or not mime.startswith(("image/", "video/")):
        raise InvalidInputError(
            "body.file", "only photos and videos are kept, and the file's content is neither"
        )
    return str(mime)


@router.post("/branches/{branch_id}/media", status_code=201)
async def upload_media(
    branch_id: str,
    file: Annotated[UploadFile, File()],
    service: Service,
    principal: Workshop,
) -> StoredMedia:
    data = await file.read(service.max_upload_bytes + 1)
    if not data:
        raise InvalidInputError("body.file", "the file is empty")
    if len(data) > service.max_upload_bytes:
        raise InvalidInputError("body.file", f"larger than {service.max_upload_bytes} bytes")
    media_type = photo_or_video(data)
    content_hash = await service.blobs.put(data, media_type)
    async with service.handlers.driver.transaction() as unit:
        await queries.add_media(unit, content_hash, branch_id, media_type, len(data))
    return StoredMedia(content_hash=content_hash, media_type=media_type, size_bytes=len(data))


@router.get("/media/{content_hash}", response_class=Response, responses=MEDIA_RESPONSES)
async def download_media(content_hash: ContentHash, service: Service, principal: MediaReader) -> Response:
    return await media_response(service, content_hash, principal.can_access_branch)


async def media_response(service: WorkorderContext, content_hash: str, may_read: MayRead) -> Response:
    """The file, if `may_read(branch_id)` holds for a branch that uploaded it; else a 404, which does not
    tell another branch's staff that the file exists."""
    async with service.handlers.driver.transaction() as unit:
        uploaded = await queries.media_branches(unit, content_hash)
    media_type = next((kind for branch, kind in uploaded.items() if may_read(branch)), None)
    data = await service.blobs.get(content_hash) if media_type else None
    if media_type is None or data is None:
        raise NotFoundError(f"no file is stored under {content_hash}")
    extension = filetype.get_type(mime=media_type)
    name = content_hash.removeprefix("sha256:")[:16] + (f".{extension.extension}" if extension else "")
    return Response(
        data,
        media_type=media_type,
        headers={
            # Content-addressed: the bytes under a hash never change, so clients may keep them for good.
            "Cache-Control": "private, max-age=31536000, immutable",
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": f'inline; filename="{name}"',
        },
    )


def branches_reader(branch_ids: Iterable[str]) -> MayRead:
    """`may_read` for files of these branches (and those uploaded before branches were recorded)."""
    allowed = {*branch_ids, "*"}
    return allowed.__contains__
