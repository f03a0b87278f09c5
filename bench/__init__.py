"""Throughput and bulk-import benchmarks of crm-api, as ratios against baselines in the same run.

``python -m bench`` (``make bench-throughput``) measures, on one freshly migrated database
holding the same 100k customers:

* (a) the ceiling: a bare Starlette + raw asyncpg endpoint reading one customer by id;
* (b) ``GET /v1/customers/{id}`` and (c) ``POST /v1/interactions`` of the real app;
* the NDJSON bulk import through the API against PostgreSQL ``COPY`` of the same rows.

``python -m bench.webhooks`` measures webhook delivery on its own: one ``crm-api worker``
against a local receiver, deliveries/s and commit-to-receiver latency.

Each server runs alone under uvicorn with one worker; ``wrk`` is the separate load process.
``make bench`` runs every benchmark of this package and ``python -m bench.summary`` puts
their headline figures in the README. See bench/README.md.
"""
