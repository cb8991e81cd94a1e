"""What the web tests share: the zoo's entries and a full-page screenshot."""

from __future__ import annotations

from pathlib import Path

from serving_helpers import SENTIMENT, TOPICS, UPOS

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
HOSTILE = '<script>alert("card")</script> <img src=x onerror=alert(1)> **bold claim**'

# id -> (method, labels, task_type, metrics, parents, description)
ENTRIES: dict[str, tuple] = {
    "lang/de@team:1.0.0": ("lora", None, None, {"dataset": "text", "mlm_accuracy": 0.3}, [], ""),
    "sentiment/de@team:1.0.0": (
        "lora",
        SENTIMENT,
        "sequence",
        {
            "dataset": "reviews",
            "split": "test (zero-shot from en,fr)",
            "accuracy": 0.71,
            "macro_f1": 0.70,
            "accuracy_en": 0.66,
            "accuracy_fr": 0.62,
        },
        ["lang/de@team:1.0.0"],
        "German sentiment, first try",
    ),
    "sentiment/de@team:1.1.0": (
        "lora",
        SENTIMENT,
        "sequence",
        {"dataset": "reviews", "split": "test", "accuracy": 0.83, "accuracy_en": 0.7},
        [],
        HOSTILE,
    ),
    "sentiment/de@team:1.2.0": (
        "lora",
        SENTIMENT,
        "sequence",
        {"dataset": "reviews", "split": "test", "accuracy": 0.95},
        [],
        "German sentiment, labels swapped",
    ),
    "sentiment/de@team:2.0.0-rc.1": (
        "lora",
        SENTIMENT,
        "sequence",
        {"dataset": "reviews", "split": "test", "accuracy": 0.86},
        [],
        "German sentiment, release candidate",
    ),
    "sentiment/en@team:1.0.0": (
        "lora",
        SENTIMENT,
        "sequence",
        {"dataset": "reviews", "split": "test", "accuracy": 0.9, "accuracy_de": 0.75},
        [],
        "English sentiment",
    ),
    "sentiment/fr@team:1.0.0": (
        "ia3",
        SENTIMENT,
        "sequence",
        {"dataset": "reviews", "split": "test", "accuracy": 0.8, "accuracy_de": 0.69},
        [],
        "French sentiment",
    ),
    "pos/de@team:1.0.0": (
        "lora",
        UPOS,
        "token",
        {"dataset": "pos", "split": "test", "token_accuracy": 0.9},
        [],
        "German part of speech",
    ),
    "topic/nl@other:1.0.0": (
        "bottleneck",
        TOPICS,
        "sequence",
        {"dataset": "news", "split": "test", "macro_f1": 0.5},
        [],
        "Dutch topics",
    ),
}
YANKED = {"sentiment/de@team:1.2.0": "labels swapped in the head"}


def screenshot(driver, folder: Path, name: str, width: int = 1280) -> Path:
    """A PNG of the whole page at ``width`` (the window grows to the page's height)."""
    driver.set_window_size(width, 1000)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, min(max(height, 600) + 120, 6000))
    path = folder / f"{name}.png"
    driver.save_screenshot(str(path))
    driver.set_window_size(1280, 1000)
    return path
