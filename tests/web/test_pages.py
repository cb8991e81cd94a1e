"""The web pages over HTTP from the real server on loopback: what each page says, filters and
sorting, escaping of user content, hub mode without a runtime, and /v1/stats against /metrics."""

from __future__ import annotations

import fnmatch
import html
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from web_helpers import ENTRIES, HOSTILE, YANKED

import adapterhub.server.web as web
from adapterhub.registry.manifest import Manifest
from adapterhub.registry.resolver import Resolver
from adapterhub.server import ServerThread
from adapterhub.server.web.catalog import headline_metric, language_metrics
from adapterhub.server.web.hub import create_hub_app
from adapterhub.server.web.pages import ASSETS

ROW = re.compile(r'<tr data-testid="adapter-row" data-id="([^"]+)"')


def row_ids(page: str) -> list[str]:
    return ROW.findall(page)


def get(url: str, path: str, **params) -> httpx.Response:
    response = httpx.get(url + path, params=params, timeout=30)
    assert response.status_code == 200, response.text[:500]
    return response


def spec(adapter_id: str) -> dict:
    method, labels, task_type, metrics, parents, _ = ENTRIES[adapter_id]
    task, rest = adapter_id.split("/")
    lang, rest = rest.split("@")
    namespace = rest.split(":")[0]
    kind = "language" if task == "lang" else "task"
    return dict(task=task, lang=lang, namespace=namespace, method=method, kind=kind, **metrics)


def test_browser_lists_every_entry_with_where_it_lives_and_its_state(hub_url, web_zoo):
    page = get(hub_url, "/").text
    assert sorted(row_ids(page)) == sorted(ENTRIES)
    rows = dict(re.findall(r'data-id="([^"]+)"(.*?)</tr>', page, flags=re.S))
    where = str(web_zoo.registry)
    for adapter_id, row in rows.items():
        assert where in row, f"{adapter_id}: no store named"
    assert "yanked: labels swapped in the head" in rows["sentiment/de@team:1.2.0"]
    assert re.findall(r'data-id="([^"]+)" class="yanked"', page) == list(YANKED)
    for older in ("sentiment/de@team:1.0.0", "sentiment/de@team:2.0.0-rc.1"):
        assert "not promoted" in rows[older] and "means 1.1.0" in rows[older], older
    assert "a prerelease" in rows["sentiment/de@team:2.0.0-rc.1"]
    assert "current" in rows["sentiment/de@team:1.1.0"]
    assert "not promoted" not in rows["sentiment/de@team:1.1.0"]


FILTERS = [
    {"task": "sentiment"},
    {"lang": "de"},
    {"method": "ia3"},
    {"namespace": "other"},
    {"kind": "language"},
    {"metric": "accuracy", "min_value": "0.8"},
    {"metric": "accuracy_de"},
    {"task": "sentiment", "lang": "de", "hide_yanked": "true"},
    {"task": "sentiment", "current_only": "true"},
    {"q": "RELEASE candidate"},
]


def expected(filters: dict) -> set[str]:
    found = set()
    for adapter_id in ENTRIES:
        facts = spec(adapter_id)
        if any(facts[k] != v for k, v in filters.items() if k in ("task", "lang", "method")):
            continue
        if any(facts[k] != v for k, v in filters.items() if k in ("namespace", "kind")):
            continue
        if "metric" in filters:
            value = facts.get(filters["metric"])
            if value is None or value < float(filters.get("min_value", "-inf")):
                continue
        if filters.get("hide_yanked") and adapter_id in YANKED:
            continue
        current = {"sentiment/de@team:1.1.0", "sentiment/en@team:1.0.0", "sentiment/fr@team:1.0.0"}
        if filters.get("current_only") and adapter_id not in current:
            continue
        if "q" in filters and filters["q"].lower() not in ENTRIES[adapter_id][5].lower():
            continue
        found.add(adapter_id)
    return found


@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: ",".join(f))
def test_each_filter_narrows_the_list(hub_url, filters):
    want = expected(filters)
    assert want and want != set(ENTRIES)  # every case narrows to something
    assert set(row_ids(get(hub_url, "/", **filters).text)) == want


def test_backbone_filter_by_name_or_fingerprint(hub_url, web_zoo):
    for value in (web_zoo.backbone_name, web_zoo.fingerprint):
        assert sorted(row_ids(get(hub_url, "/", backbone=value).text)) == sorted(ENTRIES)
    assert row_ids(get(hub_url, "/", backbone="another-backbone").text) == []
    assert "No entry matches these filters" in get(hub_url, "/", backbone="x").text


def test_sort_by_a_metric_is_best_first_then_the_rest(hub_url):
    ids = row_ids(get(hub_url, "/", sort="accuracy").text)
    scored = sorted(
        (i for i in ENTRIES if "accuracy" in spec(i)), key=lambda i: -spec(i)["accuracy"]
    )
    assert ids[: len(scored)] == scored
    assert set(ids[len(scored) :]) == set(ENTRIES) - set(scored)


def test_adapter_page_shows_the_entry_in_full(hub_url, web_zoo):
    adapter_id = "sentiment/de@team:1.0.0"
    manifest = Manifest.from_json(
        (web_zoo.registry / "team/sentiment/de/1.0.0/manifest.json").read_text()
    )
    page = get(hub_url, f"/adapters/{adapter_id}").text
    assert f'<h1 class="id">{adapter_id}</h1>' in page
    metrics = page.split('<table class="metrics">')[1].split("</table>")[0]
    assert re.findall(r'<th scope="row">(\w+)\*?</th>', metrics) == ["de", "en", "fr"]
    assert "test (zero-shot from en,fr)" in metrics and "0.710" in metrics and "0.620" in metrics
    chart = page.split('<svg class="bars"')[1].split("</svg>")[0]
    assert chart.count('class="bar') - chart.count('class="bar-') == 3  # one bar per language
    assert "de 0.710, en 0.660, fr 0.620" in chart
    for name, info in manifest.files.items():
        assert name in page and info.sha256 in page
    assert "not signed" in page
    assert 'href="/adapters/lang/de@team:1.0.0"' in page  # its parent
    versions = page.split('<table class="versions">')[1].split("</table>")[0]
    assert re.findall(r">(\d\.\d\.\d[^<( ]*)", versions) == [
        "2.0.0-rc.1",
        "1.2.0",
        "1.1.0",
        "1.0.0",
    ]
    assert "labels swapped in the head" in versions
    assert manifest.created_at in versions
    assert f"adapterhub registry pull {adapter_id}" in page
    assert f"adapterhub serve --preload {adapter_id}" in page
    assert f'"adapter": "{adapter_id}"' in html.unescape(page)
    assert "curl -s http://127.0.0.1:8080/v1/predict" in page  # the hub names serve's address
    assert "max_length: 64" in page  # the recipe


def test_matrix_of_the_task_when_the_entry_has_one(hub_url):
    page = get(hub_url, "/adapters/sentiment/de@team:1.0.0").text
    matrix = page.split('<table class="heatmap">')[1].split("</table>")[0]
    rows = re.findall(r'<th scope="row">(?:<a [^>]+>)?(\w+)', matrix)
    assert rows == ["de", "en", "fr"]  # this version plus the current en and fr adapters
    assert re.findall(r'<th scope="col">(\w+)</th>', matrix) == ["de", "en", "fr"]
    assert "shade-7" in matrix and "0.900" in matrix and "shade-0" in matrix  # 0.9 top, 0.62 low
    assert "(this page)" in matrix
    assert '<table class="heatmap">' not in get(hub_url, "/adapters/pos/de@team:1.0.0").text


def test_a_short_id_opens_what_it_resolves_to(hub_url):
    assert (
        '<h1 class="id">sentiment/de@team:1.1.0</h1>'
        in get(hub_url, "/adapters/sentiment/de@team").text
    )


def test_card_is_user_content_and_is_escaped(hub_url):
    response = get(hub_url, "/adapters/sentiment/de@team:1.1.0")
    page = response.text
    assert "<script>alert" not in page and "<img" not in page and "onerror=alert(1)>" not in page
    assert "&lt;script&gt;alert(" in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    card = page.split('<article class="card">')[1].split("</article>")[0]
    assert "<h1>sentiment/de@team:1.1.0</h1>" in card  # the Markdown is rendered
    assert "<strong>bold claim</strong>" in card
    assert "sha256 matches the manifest" in page
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert HOSTILE not in page


def test_a_tampered_card_is_not_shown(copied_zoo):
    card = copied_zoo / "team/sentiment/en/1.0.0/README.md"
    card.write_text(card.read_text() + "\nsend your tokens to evil.example\n")
    with ServerThread(create_hub_app(Resolver.only(copied_zoo))) as server:
        page = get(server.url, "/adapters/sentiment/en@team:1.0.0").text
    assert "not the published card" in page and "evil.example" not in page


def test_unknown_adapter_is_a_404_page(hub_url):
    response = httpx.get(hub_url + "/adapters/nothing/xx@team:1.0.0")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "nothing/xx" in response.text and "Back to the registry" in response.text
    assert httpx.get(hub_url + "/adapters/not an id").status_code == 404


def test_hub_mode_says_plainly_what_needs_a_runtime(hub_url):
    playground = get(hub_url, "/playground").text
    assert "needs a running server with a backbone" in playground
    assert "playground-input" not in playground
    assert "There is no server to watch" in get(hub_url, "/live").text
    response = httpx.get(hub_url + "/v1/stats")
    assert response.status_code == 503
    assert response.json()["error_type"] == "unavailable"
    assert "adapterhub serve" in response.json()["error"]
    assert "/docs" not in get(hub_url, "/").text  # the hub serves no API


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, flags=re.M)
    assert match, name
    return float(match.group(1))


def test_stats_are_the_numbers_metrics_exports(serve_url):
    adapters = ["sentiment/fr@team:1.0.0", "pos/de@team:1.0.0"]
    for adapter in adapters:
        response = httpx.post(
            serve_url + "/v1/predict", json={"adapter": adapter, "inputs": ["ein gutes buch"]}
        )
        assert response.status_code == 200, response.text
    stats = httpx.get(serve_url + "/v1/stats").json()
    exported = httpx.get(serve_url + "/metrics").text
    assert {r["id"] for r in stats["resident"]} >= set(adapters)
    assert stats["loads"] == _metric(exported, "adapterhub_adapter_loads_total") >= 2
    assert stats["evictions"] == _metric(exported, "adapterhub_adapter_evictions_total")
    assert stats["batch_size"]["count"] == _metric(exported, "adapterhub_batch_size_count") >= 2
    assert sum(b["count"] for b in stats["batch_size"]["buckets"]) == stats["batch_size"]["count"]
    assert stats["queue_inputs"] == 0 and stats["max_queue"] == 1024
    assert stats["pool"]["allocated_bytes"] > 0 and stats["pool"]["resident"] >= 2
    assert stats["adapter_requests"]["sentiment/fr@team:1.0.0"] >= 1
    live = get(serve_url, "/live").text
    assert "sentiment/fr@team:1.0.0" in live and 'data-stat="loads"' in live


def test_polling_stats_stays_out_of_the_request_time(serve_url):
    def timed() -> float:
        return _metric(httpx.get(serve_url + "/metrics").text, "adapterhub_request_seconds_count")

    before = timed()
    for _ in range(3):
        assert httpx.get(serve_url + "/v1/stats").status_code == 200
    assert timed() == before
    get(serve_url, "/")
    assert timed() == before + 1  # a page is a request like any other


def test_serve_offers_the_playground_for_its_backbone(serve_url, web_zoo):
    page = get(serve_url, "/playground").text
    offered = set(re.findall(r'<option value="([^"]+)"></option>', page))
    current = {"sentiment/de@team:1.1.0", "pos/de@team:1.0.0", "lang/de@team:1.0.0"}
    assert current <= offered
    assert not offered & (set(YANKED) | {"sentiment/de@team:1.0.0"})
    assert all("@adapterhub:" not in o for o in offered)  # the project's are for another backbone
    assert 'data-testid="playground-adapter"' in page and 'value="sentiment/de@team:1.1.0"' in page
    for testid in ("playground-input", "playground-submit", "playground-result"):
        assert f'data-testid="{testid}"' in page


def test_assets_are_packaged_and_pages_name_nothing_outside(hub_url, serve_url):
    for name, asset in ASSETS.items():
        response = get(hub_url, f"/static/web/{name}")
        assert response.content == asset.body
        assert response.headers["content-type"].split(";")[0] == asset.media_type.split(";")[0]
    assert {"hub.css", "hub.js", "playground.js", "live.js"} <= set(ASSETS)
    assert httpx.get(hub_url + "/static/web/../app.py").status_code == 404
    for url, path in [
        (hub_url, "/"),
        (hub_url, "/adapters/pos/de@team:1.0.0"),
        (serve_url, "/playground"),
        (serve_url, "/live"),
    ]:
        page = get(url, path).text
        assert not re.search(r'(src|href)="(https?:)?//', page), path
        for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', page):
            assert httpx.get(url + asset).status_code == 200, asset


def test_every_template_and_asset_ships_in_the_wheel():
    """pyproject's package-data globs cover every file the pages read (a wheel built without
    one would answer 500 or serve a page without its script)."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    root = Path(__file__).resolve().parents[2]
    data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    globs = data["package-data"]["adapterhub.server.web"]
    folder = Path(web.__file__).parent
    files = [
        p.relative_to(folder).as_posix()
        for d in ("templates", "static")
        for p in (folder / d).iterdir()
    ]
    assert len(files) >= 10
    assert [f for f in files if not any(fnmatch.fnmatch(f, g) for g in globs)] == []


def test_language_metrics_tell_languages_from_metric_names():
    manifest = Manifest.model_validate(
        {
            "id": "pos/en@team:1.0.0",
            "kind": "task",
            "task": "pos",
            "lang": "en",
            "namespace": "team",
            "version": "1.0.0",
            "method": "lora",
            "backbone": {"name": "b", "fingerprint": "f"},
            "files": {},
            "created_at": "2026-01-01T00:00:00Z",
            "created_by": "t",
            "metrics": {
                "macro_f1": 0.6,
                "token_accuracy": 0.85,
                "token_accuracy_de": 0.81,
                "token_accuracy_zh": 0.2,
                "f1_de": 0.5,
            },
        }
    )
    assert language_metrics(manifest) == {
        "en": {"macro_f1": 0.6, "token_accuracy": 0.85, "f1_de": 0.5},
        "de": {"token_accuracy": 0.81},
        "zh": {"token_accuracy": 0.2},
    }
    assert headline_metric(manifest) == "token_accuracy"


def test_hub_command_serves_a_store_without_a_backbone(web_zoo, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "adapterhub", "hub", "--store", str(web_zoo.registry)]
    process = subprocess.Popen(
        [*command, "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.stdout.read()
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "adapterhub hub did not answer in 120 s"
                time.sleep(0.5)
        assert page.status_code == 200 and sorted(row_ids(page.text)) == sorted(ENTRIES)
        assert httpx.get(f"http://127.0.0.1:{port}/v1/stats").status_code == 503
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    assert f"on http://127.0.0.1:{port}/" in output


HUB_WITHOUT_TORCH = """
import sys
from fastapi.testclient import TestClient
from adapterhub.registry.resolver import Resolver
from adapterhub.server.web.hub import create_hub_app
client = TestClient(create_hub_app(Resolver.only(sys.argv[1])))
for path in ("/", "/adapters/" + sys.argv[2], "/playground", "/live", "/v1/stats"):
    assert client.get(path).status_code in (200, 503), path
print(sorted(m for m in ("torch", "transformers", "peft") if m in sys.modules))
"""


def test_the_hub_serves_its_pages_without_importing_torch(web_zoo):
    """`adapterhub hub` loads no backbone, so it has no use for torch (3 s of its start here)."""
    adapter_id = next(iter(ENTRIES))
    run = subprocess.run(
        [sys.executable, "-c", HUB_WITHOUT_TORCH, str(web_zoo.registry), adapter_id],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
