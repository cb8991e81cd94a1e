"""``/metrics`` of the replicas as one Prometheus page: every replica's series (residency,
loads, evictions, batch sizes, queue time, ...) under a ``replica`` label, plus the ingress's
own: requests per replica and status, routing outcomes, replicas it can reach."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

REPLICA_LABEL = "replica"


def merge(scrapes: Mapping[str, str]) -> list[Metric]:
    """The families of every replica's page, each sample labelled with its replica's name."""
    families: dict[str, Metric] = {}
    for replica, text in scrapes.items():
        for family in text_string_to_metric_families(text):
            merged = families.get(family.name)
            if merged is None:
                merged = families[family.name] = Metric(
                    family.name, family.documentation, family.type, family.unit
                )
            merged.samples += [
                Sample(s.name, {**s.labels, REPLICA_LABEL: replica}, s.value, s.timestamp)
                for s in family.samples
            ]
    return list(families.values())


class _Families:
    """A collector that yields fixed families (one scrape's merged pages)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families


class IngressMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "adapterhub_ingress_requests",
            "requests the ingress answered, by the replica that answered and status",
            [REPLICA_LABEL, "status"],
            registry=self.registry,
        )
        self.unavailable = Counter(
            "adapterhub_ingress_unavailable",
            "requests answered 503 because their replica died or could not be reached",
            registry=self.registry,
        )
        self.replicas = Gauge(
            "adapterhub_ingress_replicas",
            "replicas the ingress routes to",
            registry=self.registry,
        )
        self.routed = Gauge(
            "adapterhub_ingress_routed",
            "requests routed to a replica that held their adapters (resident) or had to load "
            "one (load), since the ingress started",
            ["outcome"],
            registry=self.registry,
        )

    def render(self, scrapes: Mapping[str, str]) -> bytes:
        """The ingress's series, then every replica's."""
        page = CollectorRegistry(auto_describe=False)
        page.register(_Families(merge(scrapes)))
        return generate_latest(self.registry) + generate_latest(page)
