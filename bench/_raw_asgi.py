"""The floor of bench/serve.py: /segment as a raw ASGI app, no framework, on uvicorn with uvloop and httptools.

It loads the same registered champion through the service's own ModelStore and answers exactly what
the service's /segment answers (model, version, and per customer the segment id and name), so the
bench can check the answers are equal before it measures. Nothing else: no validation beyond what
the arithmetic needs, no middleware, no metrics. Started by bench/serve.py as

    python -m uvicorn bench._raw_asgi:app --loop uvloop --http httptools --no-access-log
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from serving.settings import load_settings
from serving.store import ModelStore

STORE = ModelStore(load_settings())
STORE.refresh()


def segment(body: bytes) -> bytes:
    served = STORE.get("segmenter")
    model = served.model
    customers = json.loads(body)["customers"]
    x = np.array([[float(c[f]) for f in model.features] for c in customers], dtype=np.float64)
    ids = np.asarray(model.assign(x)).tolist()
    segments = [{"customer_id": c["customer_id"], "segment_id": int(i), "segment_name": str(model.names[i])}
                for c, i in zip(customers, ids, strict=True)]
    return json.dumps({"model": served.name, "version": served.version, "segments": segments}).encode()


async def _body(receive: Any) -> bytes:
    chunks, more = [], True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    body = await _body(receive)
    if scope["path"] == "/segment" and scope["method"] == "POST":
        status, data = 200, segment(body)
    elif scope["path"] == "/readyz":
        status, data = 200, b'{"ready": true}'
    else:
        status, data = 404, b'{"error": "not found"}'
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})
