"""Real Chromium for the browser tests: Debian's /usr/bin/chromium driven by Playwright, offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, Playwright

from tests.support.processes import ROOT

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "reports" / "screenshots"
AXE_JS = Path(__file__).resolve().parents[1] / "vendor" / "axe-core" / "axe.min.js"

# Headless, and nothing that phones home: we run as root on a loopback-only network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class ChromiumMissing(AssertionError):
    """The system Chromium the tests drive is not installed."""


def require_chromium() -> Path:
    """The system Chromium, or a failure that says which Debian package to install."""
    if not CHROMIUM.is_file():
        raise ChromiumMissing(
            f"{CHROMIUM} not found: the browser tests need the Debian package `chromium` "
            "(sudo apt-get install -y chromium, or run stack/install-system-deps.sh)"
        )
    return CHROMIUM


def launch_chromium(playwright: Playwright) -> Browser:
    """Launch the system Chromium headless with the offline flags."""
    return playwright.chromium.launch(
        executable_path=str(require_chromium()), headless=True, args=CHROMIUM_ARGS
    )


def screenshot(page: Page, name: str, full_page: bool = True) -> Path:
    """Save a screenshot of the page under reports/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page, animations="disabled")
    return path


def axe_violations(page: Page, impacts: tuple[str, ...] = ("serious", "critical")) -> list[dict[str, Any]]:
    """Run the vendored axe-core in the page; the violations of the given impacts."""
    page.add_script_tag(content=AXE_JS.read_text(encoding="utf-8"))
    result = page.evaluate(
        """async () => {
            const r = await axe.run(document, {resultTypes: ["violations"]});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => n.target.join(" ") + ": " + n.failureSummary)}));
        }"""
    )
    return [v for v in result if v["impact"] in impacts]


def describe(violations: list[dict[str, Any]]) -> str:
    """Violations as readable text for an assertion message."""
    return json.dumps(violations, indent=2)
