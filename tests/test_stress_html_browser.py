"""The stress HTML report in a real browser: headless Chromium (Debian's ``chromium``) driven
by playwright renders a page made from a real ``wfctl stress run all --smoke`` result
(tests/data/stress-smoke-result.json), takes screenshots at 1,400 px and at 420 px and checks
from the DOM that nothing overflows the viewport sideways and that every chart has a title and
axis labels; the same for a PostgreSQL result (tests/pg_stress_result.py: waits per shard and
conflicts per 1,000 starts).

Skipped only where no browser can be had (no ``chromium`` or no playwright); under
``CI=true`` (.ci/run installs chromium) a missing browser fails instead.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path

import jsonschema
import pytest
from pg_stress_result import pg_result

from wfctl.stress.html import chart_titles, render_html

ROOT = Path(__file__).resolve().parent.parent
RESULT = Path(__file__).parent / "data" / "stress-smoke-result.json"
WIDTHS = (1400, 420)
LOAD_TIMEOUT_MS = 120_000  # a busy 2-core machine


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    reason = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        reason = "the playwright package is not installed (pip install -e '.[test]')"
    if path is None:
        reason = "no chromium on PATH (apt-get install -y chromium)"
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)
    return str(path)


@pytest.fixture(scope="module")
def result() -> dict:
    return json.loads(RESULT.read_text())


def test_the_fixture_is_a_valid_result(result: dict) -> None:
    """The page is built from a real result: it still matches the documented schema."""
    schema = json.loads((ROOT / "docs" / "stress-result.schema.json").read_text())
    jsonschema.validate(result, schema)
    assert any(v.get("samples") for s in result["scenarios"] for v in s["variants"])


_LAYOUT = """() => {
  document.querySelectorAll('details').forEach(d => d.open = true);
  const width = document.documentElement.clientWidth;
  const overflowing = [];
  for (const el of document.querySelectorAll('body *')) {
    const r = el.getBoundingClientRect();
    if (r.width > 0 && (r.right > width + 1 || r.left < -1)) {
      overflowing.push(`${el.tagName.toLowerCase()}.${el.getAttribute('class') || ''} right=${Math.round(r.right)}`);
    }
  }
  const visible = el => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  const charts = [...document.querySelectorAll('figure')].map(fig => {
    const svg = fig.querySelector('svg');
    const axes = svg ? [...svg.querySelectorAll('g.titles text.title:not(.plot_title)')] : [];
    // pygal wraps a long title over several text.plot_title lines
    const plotTitle = svg ? [...svg.querySelectorAll('text.plot_title')].map(t => t.textContent).join(' ') : '';
    return {
      caption: fig.querySelector('h4') && visible(fig.querySelector('h4')) ? fig.querySelector('h4').textContent : '',
      svgTitle: plotTitle,
      xTitle: axes.filter(t => visible(t) && !t.hasAttribute('transform')).map(t => t.textContent.trim()).join(' '),
      yTitle: axes.filter(t => visible(t) && t.hasAttribute('transform')).map(t => t.textContent.trim()).join(' '),
      width: svg ? svg.getBoundingClientRect().width : 0,
      sciNotation: svg ? [...svg.querySelectorAll('.axis text')].map(t => t.textContent).filter(t => /\\de[+-]?\\d/i.test(t)) : [],
    };
  });
  return {width, scrollWidth: document.documentElement.scrollWidth, overflowing, charts,
          bodyFont: parseFloat(getComputedStyle(document.body).fontSize)};
}"""


def _open_at_widths(report: Path, shots: Path | None = None) -> dict[int, dict]:
    """``report`` opened in headless Chromium at each width: its layout facts, the requests it
    made, the summary's text and (with ``shots``) a full-page screenshot in that folder."""
    chromium = _chromium()
    from playwright.sync_api import sync_playwright

    requests: list[str] = []
    out: dict[int, dict] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"],
                                    timeout=LOAD_TIMEOUT_MS)
        try:
            for width in WIDTHS:
                page = browser.new_page(viewport={"width": width, "height": 900})
                page.on("request", lambda r: requests.append(r.url))
                page.goto(report.as_uri(), timeout=LOAD_TIMEOUT_MS, wait_until="load")
                out[width] = {**page.evaluate(_LAYOUT), "requests": list(requests),
                              "summary": page.inner_text("#summary")}
                if shots is not None:
                    out[width]["screenshot"] = shot = shots / f"report-{width}.png"
                    page.screenshot(path=str(shot), full_page=True, timeout=LOAD_TIMEOUT_MS)
                page.close()
        finally:
            browser.close()
    return out


@pytest.fixture(scope="module")
def pages(result: dict, tmp_path_factory: pytest.TempPathFactory) -> dict[int, dict]:
    """The report opened at each width: its layout facts and the screenshot path."""
    tmp = tmp_path_factory.mktemp("html-browser")
    report = tmp / "report.html"
    report.write_text(render_html(result), encoding="utf-8")
    return _open_at_widths(report, tmp)


@pytest.mark.parametrize("width", WIDTHS)
def test_nothing_overflows_the_viewport_sideways(pages: dict, width: int) -> None:
    page = pages[width]
    assert page["width"] == width
    assert page["scrollWidth"] <= width, f"the page scrolls sideways at {width} px"
    assert page["overflowing"] == [], f"elements wider than the {width} px window: {page['overflowing'][:10]}"
    assert page["bodyFont"] >= 13
    shot = page["screenshot"]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def _assert_charts_titled(charts: list[dict], titles: list[str], width: int) -> None:
    """Every chart of ``titles`` is on the page in order, with its title, axis titles, no
    scientific notation, within ``width``."""
    assert [c["caption"] for c in charts] == titles
    for chart in charts:
        assert chart["svgTitle"] == chart["caption"]
        assert chart["xTitle"] and chart["yTitle"], f"{chart['caption']}: axis titles {chart}"
        assert 0 < chart["width"] <= width
        assert chart["sciNotation"] == [], f"{chart['caption']}: {chart['sciNotation']}"


@pytest.mark.parametrize("width", WIDTHS)
def test_every_chart_has_a_title_and_axis_labels(pages: dict, result: dict, width: int) -> None:
    _assert_charts_titled(pages[width]["charts"], chart_titles(result), width)


@pytest.fixture(scope="module")
def pg_pages(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict[int, dict]]:
    """A PostgreSQL result and its report opened at each width."""
    result = pg_result()
    tmp = tmp_path_factory.mktemp("html-browser-pg")
    report = tmp / "report.html"
    report.write_text(render_html(result), encoding="utf-8")
    return result, _open_at_widths(report, tmp)


@pytest.mark.parametrize("width", WIDTHS)
def test_postgresql_waits_and_conflicts_charts_fit_with_titles_and_axis_labels(pg_pages: tuple, width: int) -> None:
    result, pages = pg_pages
    page = pages[width]
    assert page["scrollWidth"] <= width, f"the page scrolls sideways at {width} px"
    assert page["overflowing"] == [], f"elements wider than the {width} px window: {page['overflowing'][:10]}"
    titles = chart_titles(result)
    assert any(t.startswith("Waits by wait event over time") for t in titles)
    assert "Conflicts per 1,000 starts — shard-comparison" in titles
    _assert_charts_titled(page["charts"], titles, width)
    assert "Backend: PostgreSQL, 2 servers" in page["summary"]


def test_the_page_loads_nothing_from_elsewhere(pages: dict) -> None:
    for page in pages.values():
        assert [u for u in page["requests"] if not u.startswith(("file:", "data:", "about:"))] == []


def test_a_wide_comparison_still_fits(result: dict, tmp_path: Path) -> None:
    """Long variant names and failed thresholds: still no sideways scroll at either width."""
    wide = copy.deepcopy(result)
    scenario = next(s for s in wide["scenarios"] if s.get("comparison"))
    long = "4sh/exec/hot-with-a-really-long-variant-name-that-does-not-wrap-easily"
    old = scenario["variants"][-1]["name"]
    scenario["variants"][-1]["name"] = long
    for row in scenario["comparison"]["rows"]:
        for key in ("values", "ratios"):
            row[key][long] = row[key].pop(old)
    scenario["thresholds"][0].update(passed=False, expression="start_latency.p99 < 0.001ms")
    report = tmp_path / "wide.html"
    report.write_text(render_html(wide), encoding="utf-8")
    for width, layout in _open_at_widths(report).items():
        assert layout["scrollWidth"] <= width and layout["overflowing"] == [], (width, layout["overflowing"])
        assert "start_latency.p99 < 0.001ms" in layout["summary"]
