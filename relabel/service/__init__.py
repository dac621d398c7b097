"""`relabel serve`: the relabel loop as a Label Studio plugin.

One small ASGI service (Starlette on uvicorn) that speaks Label Studio's ML backend protocol and receives its
webhooks, and one background worker that keeps the store up to date and runs rounds by itself.

    app.py           the endpoints: /health /setup /predict /webhook (the ML backend protocol), / and /status.json
    predictions.py   /predict's answers from the latest scored round
    webhooks.py      which webhook means what, and the shared-secret and basic-auth checks
    policy.py        when the worker starts a round ([serve] trigger)
    worker.py        the one background worker: pull, collect, round; retries with backoff
    registration.py  --register / --unregister: webhooks and the ML backend connection through Label Studio's API
    runner.py        run it: logging, uvicorn, SIGTERM, and a thread form for the demo and the tests

An app-layer package: it may import every layer below (report, loop, connectors, config, models, scoring) and
the small shared modules; nothing below imports it.
"""
