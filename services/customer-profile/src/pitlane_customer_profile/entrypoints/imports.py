"""POST /v1/imports: a CSV or XLSX file of customers and vehicles; `dry_run=true` only reports."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, UploadFile
from pydantic import BaseModel

from pitlane_customer_profile.adapters.import_file import read_rows
from pitlane_customer_profile.entrypoints.http import Importer, Services
from pitlane_customer_profile.service_layer.importer import run_import
from pitlane_platform.errors import InvalidInputError

MAX_FILE_BYTES = 50 * 1024 * 1024
IMPORT_PATH = "/v1/imports"


class RowProblemView(BaseModel):
    row: int
    field: str
    reason: str


class ImportReportView(BaseModel):
    dry_run: bool
    rows: int
    customers_created: int
    vehicles_created: int
    customers_existing: int
    vehicles_existing: int
    bad_rows: int
    problems: list[RowProblemView]


def build_import_router(services: Services, *, max_rows: int) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["import"])

    @router.post(
        IMPORT_PATH.removeprefix("/v1"), summary="Import customers and vehicles from a CSV or XLSX file"
    )
    async def import_file(
        file: UploadFile,
        principal: Importer,
        dry_run: Annotated[bool, Query(description="check every row and report, change nothing")] = True,
    ) -> ImportReportView:
        content = await file.read(MAX_FILE_BYTES + 1)
        if len(content) > MAX_FILE_BYTES:
            raise InvalidInputError("file", f"at most {MAX_FILE_BYTES // (1024 * 1024)} MB per import")
        header, rows = read_rows(file.filename or "", content)
        report = await run_import(
            services.uow, services.context(principal), header, rows, dry_run=dry_run, max_rows=max_rows
        )
        return ImportReportView(
            dry_run=report.dry_run,
            rows=report.rows,
            customers_created=report.customers_created,
            vehicles_created=report.vehicles_created,
            customers_existing=report.customers_existing,
            vehicles_existing=report.vehicles_existing,
            bad_rows=len({p.row for p in report.problems}),
            problems=[RowProblemView(row=p.row, field=p.field, reason=p.reason) for p in report.problems],
        )

    return router
