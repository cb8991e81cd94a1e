"""The pages in a real browser (headless Debian chromium) against the real server on loopback:
list, filter, open a card, run the playground (one adapter, a stack, several at once, token
tags, embeddings), watch the live view refresh; labels, keyboard use and phone width. A
screenshot of each page is saved under the test artefacts folder."""

from __future__ import annotations

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait
from web_helpers import ENTRIES, screenshot

WAIT_S = 30
TEXTS = ["das buch ist wunderbar", "der film war langweilig", "この映画は退屈だった"]

UNLABELLED = """
return [...document.querySelectorAll('input, select, textarea, button')]
  .filter((e) => e.type !== 'hidden' && !(e.labels && e.labels.length)
                 && !e.getAttribute('aria-label') && !(e.tagName === 'BUTTON' && e.textContent.trim()))
  .map((e) => e.outerHTML);
"""


def wait(driver, condition, timeout: float = WAIT_S):
    return WebDriverWait(driver, timeout).until(condition)


def rows(driver) -> list[str]:
    return [
        r.get_attribute("data-id")
        for r in driver.find_elements(By.CSS_SELECTOR, "[data-testid=adapter-row]")
    ]


def predict(url: str, body: dict) -> dict:
    response = httpx.post(url + "/v1/predict", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def run_playground(driver, url: str, adapter: str, texts: list[str], **fields) -> list:
    """Fill the playground and run it; the result blocks once every one is answered."""
    driver.get(url + "/playground")
    box = driver.find_element(By.CSS_SELECTOR, "[data-testid=playground-adapter]")
    box.clear()
    box.send_keys(adapter)
    if "language" in fields:
        Select(driver.find_element(By.ID, "pg-language")).select_by_value(fields["language"])
    if "compare" in fields:
        driver.find_element(By.ID, "pg-compare").send_keys(fields["compare"])
    inputs = driver.find_element(By.CSS_SELECTOR, "[data-testid=playground-input]")
    inputs.clear()
    inputs.send_keys("\n".join(texts))
    driver.find_element(By.CSS_SELECTOR, "[data-testid=playground-submit]").click()
    expected = 1 + len([c for c in fields.get("compare", "").split(",") if c.strip()])
    result = driver.find_element(By.CSS_SELECTOR, "[data-testid=playground-result]")
    wait(
        driver,
        lambda d: (
            result.get_attribute("aria-busy") is None
            and len(result.find_elements(By.CSS_SELECTOR, "article.result .latency, .error"))
            >= expected
        ),
    )
    return result.find_elements(By.CSS_SELECTOR, "article.result")


def test_browse_filter_and_open_a_card(browser, serve_url, artifacts):
    browser.get(serve_url + "/")
    listed = rows(browser)
    assert set(ENTRIES) <= set(listed)
    assert all(
        r.text.startswith(r.get_attribute("data-id"))
        for r in browser.find_elements(By.CSS_SELECTOR, "[data-testid=adapter-row]")
    )
    screenshot(browser, artifacts, "browse")

    Select(browser.find_element(By.ID, "f-task")).select_by_visible_text("sentiment")
    Select(browser.find_element(By.ID, "f-namespace")).select_by_visible_text("team")
    Select(browser.find_element(By.ID, "f-sort")).select_by_value("accuracy")
    browser.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
    wait(browser, ready.url_contains("task=sentiment"))
    filtered = rows(browser)
    assert filtered == [
        "sentiment/de@team:1.2.0",  # 0.95, yanked but listed (marked)
        "sentiment/en@team:1.0.0",
        "sentiment/de@team:2.0.0-rc.1",
        "sentiment/de@team:1.1.0",
        "sentiment/fr@team:1.0.0",
        "sentiment/de@team:1.0.0",
    ]
    yanked = browser.find_element(By.CSS_SELECTOR, '[data-id="sentiment/de@team:1.2.0"]')
    assert "yanked: labels swapped in the head" in yanked.text
    screenshot(browser, artifacts, "browse-filtered")

    browser.find_element(By.LINK_TEXT, "sentiment/de@team:1.0.0").click()
    wait(browser, ready.presence_of_element_located((By.CSS_SELECTOR, "h1.id")))
    assert browser.find_element(By.CSS_SELECTOR, "h1.id").text == "sentiment/de@team:1.0.0"
    table = browser.find_element(By.CSS_SELECTOR, "table.metrics")
    assert [r.text.split()[0] for r in table.find_elements(By.CSS_SELECTOR, "tbody tr")] == [
        "de*",
        "en",
        "fr",
    ]
    assert browser.find_element(By.CSS_SELECTOR, "svg.bars").is_displayed()
    assert browser.find_element(By.CSS_SELECTOR, "table.heatmap").is_displayed()
    screenshot(browser, artifacts, "adapter")


def test_playground_one_adapter_shows_the_servers_labels(browser, serve_url, artifacts):
    adapter = "sentiment/de@team:1.1.0"
    want = predict(serve_url, {"adapter": adapter, "inputs": TEXTS})["predictions"]
    [block] = run_playground(browser, serve_url, adapter, TEXTS)
    assert adapter in block.find_element(By.TAG_NAME, "h3").text
    assert "round trip" in block.find_element(By.CSS_SELECTOR, ".latency").text
    shown = [e.text for e in block.find_elements(By.CSS_SELECTOR, ".prediction .label")]
    assert shown == [p["label"] for p in want]
    for item, prediction in zip(block.find_elements(By.CSS_SELECTOR, ".prediction"), want):
        pcts = [e.text for e in item.find_elements(By.CSS_SELECTOR, ".score .pct")]
        best = max(prediction["scores"].values())
        assert pcts[0] == f"{best * 100:.1f}%" and len(pcts) == 2  # best first, every label
    curl = browser.find_element(By.ID, "pg-curl").text
    assert curl.startswith(f"curl -s {serve_url}/v1/predict") and f'"adapter":"{adapter}"' in curl
    assert TEXTS[2] in curl  # the Japanese text as typed
    screenshot(browser, artifacts, "playground")


def test_playground_stack_and_fan_out_with_token_tags(browser, serve_url, artifacts):
    stack = ["lang/de@team:1.0.0", "sentiment/de@team:1.1.0"]
    blocks = run_playground(
        browser,
        serve_url,
        stack[1],
        TEXTS[:2],
        language=stack[0],
        compare="sentiment/fr@team:1.0.0, pos/de@team:1.0.0",
    )
    assert len(blocks) == 3
    heads = [b.find_element(By.TAG_NAME, "h3").text for b in blocks]
    assert heads[0].startswith(" + ".join(stack)) and heads[1].startswith("sentiment/fr@team:1.0.0")
    stacked = predict(serve_url, {"stack": stack, "inputs": TEXTS[:2]})["predictions"]
    labels = [e.text for e in blocks[0].find_elements(By.CSS_SELECTOR, ".prediction .label")]
    assert labels == [p["label"] for p in stacked]
    tagged = predict(serve_url, {"adapter": "pos/de@team:1.0.0", "inputs": TEXTS[:2]})
    for item, prediction in zip(
        blocks[2].find_elements(By.CSS_SELECTOR, ".prediction"), tagged["predictions"]
    ):
        words = [e.text for e in item.find_elements(By.CSS_SELECTOR, ".token .word")]
        tags = [e.text for e in item.find_elements(By.CSS_SELECTOR, ".token .tag")]
        assert words == [t["word"] for t in prediction["tokens"]]
        assert tags == [t["label"] for t in prediction["tokens"]]
    assert browser.find_element(By.ID, "pg-curl").text.count("curl -s") == 3
    screenshot(browser, artifacts, "playground-fan-out")


def test_playground_embeddings_show_their_similarity(browser, serve_url):
    [block] = run_playground(browser, serve_url, "lang/de@team:1.0.0", TEXTS)
    cells = block.find_elements(By.CSS_SELECTOR, "table.similarity tbody td")
    assert len(cells) == 9
    assert [cells[i].text for i in (0, 4, 8)] == ["1.000"] * 3  # each text with itself
    assert cells[1].text == cells[3].text  # symmetric


def test_playground_errors_are_shown(browser, serve_url):
    [block] = run_playground(browser, serve_url, "sentiment/xx@team", ["hallo"])
    assert "404 not_found" in block.find_element(By.CSS_SELECTOR, ".error").text


def test_live_view_refreshes_from_stats(browser, serve_url, artifacts):
    browser.get(serve_url + "/live")
    served = int(browser.find_element(By.CSS_SELECTOR, '[data-stat="inputs"]').text)
    predict(serve_url, {"adapter": "topic/nl@other:1.0.0", "inputs": TEXTS})
    now = httpx.get(serve_url + "/v1/stats").json()
    assert now["inputs"] >= served + len(TEXTS)
    shown = (By.CSS_SELECTOR, '[data-stat="inputs"]')
    wait(browser, lambda d: int(d.find_element(*shown).text) >= now["inputs"], 10)
    assert int(browser.find_element(By.CSS_SELECTOR, '[data-stat="loads"]').text) >= now["loads"]
    assert "topic/nl@other:1.0.0" in browser.find_element(By.ID, "live-residents").text
    assert "Updated" in browser.find_element(By.ID, "live-status").text
    toggle = browser.find_element(By.ID, "live-toggle")
    toggle.click()
    assert toggle.get_attribute("aria-pressed") == "true"
    screenshot(browser, artifacts, "live")


PAGES = ["/", "/adapters/sentiment/de@team:1.0.0", "/playground", "/live"]
PHONE_SHOTS = {"/": "phone-browse", "/playground": "phone-playground"}


@pytest.mark.parametrize("path", PAGES)
def test_every_control_is_labelled_and_the_page_fits_a_phone(browser, serve_url, artifacts, path):
    browser.get(serve_url + path)
    assert browser.execute_script(UNLABELLED) == []
    browser.set_window_size(390, 844)
    try:
        browser.get(serve_url + path)
        width = browser.execute_script(
            "return [document.documentElement.scrollWidth, window.innerWidth]"
        )
        assert width[0] <= width[1], f"{path} scrolls sideways at phone width: {width}"
        if path in PHONE_SHOTS:
            screenshot(browser, artifacts, PHONE_SHOTS[path], 390)
    finally:
        browser.set_window_size(1280, 1000)


def test_keyboard_alone_filters_and_runs_the_playground(browser, serve_url):
    browser.get(serve_url + "/")
    search = browser.find_element(By.ID, "f-q")
    search.send_keys("release candidate", Keys.ENTER)  # Enter submits the filter form
    wait(browser, ready.url_contains("q=release"))
    assert rows(browser) == ["sentiment/de@team:2.0.0-rc.1"]

    browser.get(serve_url + "/playground?adapter=sentiment/fr@team:1.0.0")
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)  # the skip link comes first
    assert browser.switch_to.active_element.text == "Skip to content"
    inputs = browser.find_element(By.CSS_SELECTOR, "[data-testid=playground-input]")
    inputs.click()
    inputs.send_keys(Keys.CONTROL, Keys.ENTER)
    result = browser.find_element(By.CSS_SELECTOR, "[data-testid=playground-result]")
    wait(browser, lambda d: len(result.find_elements(By.CSS_SELECTOR, ".prediction .label")) == 4)
    assert "sentiment/fr@team:1.0.0" in result.text


def test_hub_mode_in_the_browser(browser, hub_url, artifacts):
    browser.get(hub_url + "/")
    assert sorted(rows(browser)) == sorted(ENTRIES)
    assert "no backbone loaded" in browser.find_element(By.CSS_SELECTOR, "header .mode").text
    browser.get(hub_url + "/playground")
    assert (
        "needs a running server with a backbone" in browser.find_element(By.TAG_NAME, "main").text
    )
    assert browser.find_elements(By.CSS_SELECTOR, "[data-testid=playground-input]") == []
    screenshot(browser, artifacts, "hub-playground")
    browser.get(hub_url + "/live")
    assert "There is no server to watch" in browser.find_element(By.TAG_NAME, "main").text
