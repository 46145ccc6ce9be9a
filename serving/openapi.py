"""The service's OpenAPI document: our title, version and description, the one error shape on every
operation, and the GET routes ModelGate answers (BentoML documents its POST routes and its own error
shapes only)."""

from __future__ import annotations

import importlib.metadata
from typing import Any

import attr

from serving.drift import DriftResponse
from serving.errors import openapi_errors
from serving.middleware import ModelGate
from serving.models.registry import FAMILIES
from serving.schemas import ErrorResponse, ModelDetail, ModelsResponse

DESCRIPTION = """ecomlab's model service: customer segments, demand forecasts, basket recommendations and customer
lifetime values from the registered champions (loaded once, never fitted in a request), and the KPIs of posted or uploaded order lines.

**Errors.** Every 4xx and 5xx answers `{"error": {"code", "message", "fields": [{"field", "message"}]}}`
(schema `ErrorResponse`); `code` says what went wrong (`invalid_input`, `over_limit`, `too_large`,
`unsupported_media_type`, `unauthorized`, `model_unavailable`, ...), `fields` names the request fields at fault.

**Auth.** When the service's token variable is set, send `Authorization: Bearer <token>`; /healthz, /livez
and /readyz stay open (and /metrics when `metrics_open` is set). JSON endpoints take `application/json`.

**Models.** `GET /models` lists the served models; `GET /models/{family}` adds what a request may name
(the forecaster's series ids, the segmenter's features, the recommender's k, the clv model's time unit).

**Drift.** `GET /drift` compares each served version's recent inputs (a sampled window) with the profile of its
training inputs: PSI and a KS or chi-square p-value per feature, and a status (ok, warn, alert, insufficient);
`GET /drift/{family}` for one model."""


def package_version() -> str:
    try:
        return importlib.metadata.version("ecomlab")
    except importlib.metadata.PackageNotFoundError:  # a bento runs the packages' source, not an installed distribution
        return "unknown"



def document(spec: Any, api_routes: frozenset[str]) -> Any:
    """BentoML's OpenAPI document with our header, the one error shape on every operation, POST /models
    marked deprecated, and GET /models, /models/{family}, /drift and /drift/{family} (which ModelGate answers)."""
    from bentoml._internal.service.openapi.specification import Info, PathItem

    paths = dict(spec.paths)
    for path in api_routes & set(paths):
        post = paths[path].post
        statuses = (400, 401, 413, 415, 500, *((503,) if path in ModelGate.ROUTES else ()))
        paths[path] = attr.evolve(paths[path], post={**post, "responses": {200: post["responses"][200], **openapi_errors(statuses)}})
    tags = paths["/models"].post["tags"]

    def read(what: str, model: type, statuses: tuple[int, ...], **extra: Any) -> dict[str, Any]:
        ok = {"description": "OK", "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}
        return {"description": what, "tags": tags, "responses": {200: ok, **openapi_errors(statuses)}, **extra}

    family = {"name": "family", "in": "path", "required": True, "schema": {"type": "string", "enum": sorted(FAMILIES)}}
    paths["/models"] = attr.evolve(
        paths["/models"],
        get=read("Each configured model: name, version, alias, run id, key metrics and status.", ModelsResponse, (401, 500),
                 operationId="ecomlab__models_get"),
        post={**paths["/models"].post, "deprecated": True},
    )
    paths["/models/{family}"] = PathItem(get=read(
        "One configured model and what a request may name: the forecaster's series ids, the segmenter's features and "
        "segment names, the recommender's k.", ModelDetail, (401, 404, 500), operationId="ecomlab__model_detail", parameters=[family],
    ))
    paths["/drift"] = PathItem(get=read(
        "Input drift of each served model version: PSI, p-value, window size and status per feature against the "
        "reference profile of its training inputs.", DriftResponse, (401, 500), operationId="ecomlab__drift",
    ))
    paths["/drift/{family}"] = PathItem(get=read(
        "Input drift of one served model version.", DriftResponse, (401, 404, 500), operationId="ecomlab__drift_family",
        parameters=[family],
    ))
    schemas = {k: v for k, v in spec.components["schemas"].items() if k not in ("InvalidArgument", "NotFound", "InternalServerError")}
    for model in (ErrorResponse, ModelsResponse, ModelDetail, DriftResponse):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    info = Info(title="ecomlab", description=DESCRIPTION, version=package_version())
    return attr.evolve(spec, info=info, paths=paths, components={**spec.components, "schemas": schemas})
