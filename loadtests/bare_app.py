"""The benchmark's baseline: a bare litestar endpoint that parses the same scan JSON and returns a constant.

It decodes with the real `ScanIn` struct (same validation) and answers with a response of the real
one's size, so the difference to `POST /v1/scans` is exactly OneCode's work: verification, Redis,
the durable write, the member.
"""

from __future__ import annotations

from litestar import Litestar, Request, Response, post

from service.routes.scans import decode_scan

_ANSWER = (
    b'{"scan_id":"01935c1e-0000-7000-8000-000000000000","verdict":"genuine_first","reason":null,'
    b'"product":{"id":"01935c1e-0000-7000-8000-000000000001","name":"Demo Lager 500ml",'
    b'"gtin":"06901234567892","facts":{"origin":"Qingdao, Shandong","shelf_life_days":365}},'
    b'"batch":{"id":"01935c1e-0000-7000-8000-000000000002","lot":"BENCH","production_date":null},'
    b'"scan_count":1,"first_scanned_at":"2026-11-23T00:00:00Z","member":{"id":'
    b'"01935c1e-0000-7000-8000-000000000003","enrolled":false,"points_balance":0},'
    b'"member_token":"m1.bench","reward":null}'
)


@post("/v1/scans", status_code=200)
async def scan(request: Request) -> Response[bytes]:  # type: ignore[type-arg]
    decode_scan(await request.body())
    return Response(_ANSWER, media_type="application/json")


def create_bare_app() -> Litestar:
    return Litestar([scan], openapi_config=None)
