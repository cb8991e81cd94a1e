"""``adapterhub serve --ray``: the same HTTP API over several replicas, with adapter affinity.

Design (one app, not a second implementation): every replica (:mod:`.replica`, a Ray Serve
deployment) runs the single-process server exactly, ``create_app(runtime, config)`` with its
own runtime (LRU pool, leases, banks) and batcher, and answers buffered HTTP requests through
that app in memory (:mod:`.forwarding`). The ingress (:mod:`.ingress`) is a thin ASGI app in the
``serve`` process: it reads which adapters a request names, sends the request through the
deployment's handle, and answers with the replica's response plus ``X-Adapterhub-Replica``.
Only health, readiness, metrics and the admin load/unload routes are its own, because they
must speak for every replica.

Routing is a custom Ray Serve request router (:mod:`.router`) over a residency table
(:mod:`.routing`) that every replica's answer refreshes: a request goes to a replica holding
its adapters (all of a stack), else to the least loaded one, ties broken by rendezvous hash so
an adapter keeps returning to the same replica. Ray's own ``serve.multiplexed`` routing is kept
as a policy to measure against; see benchmarks/scaleout.py for loads per 1000 requests of each.

Why the ingress is not a Ray Serve deployment behind Ray's HTTP proxy: the proxy adds a second
actor hop; measured here (2 cores, 16 concurrent clients) a request cost ~27 ms of CPU through
proxy + ingress deployment + replica, ~11 ms through this ingress + replica, ~3.4 ms for plain
uvicorn. Ray's proxy cannot route by a JSON body either. The price: the ingress lives and dies
with the ``serve --ray`` process (on any node of the cluster it joins), not under Ray's care.

Nothing here is imported unless ``--ray`` is given (Ray is the optional ``ray`` extra).
"""
