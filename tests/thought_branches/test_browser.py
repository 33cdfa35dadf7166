"""The self-contained HTML view, loaded in a real headless Chromium (Debian's chromium and
chromium-driver; .ci/run installs them). Saves a screenshot as a test artifact under
``runs/test-artifacts/thought_branches/`` (or ``$PAPERJAX_TEST_ARTIFACTS``)."""

import os
import re
import shutil
from pathlib import Path

import jax
import pytest

from llm_tools.thought_branches import (
    CoTAnalysis,
    RolloutStore,
    SamplingParams,
    Trace,
    analyze,
    extract_answer,
    plot_importance,
    plot_resilience,
    render_html,
    sweep,
    write_html,
)

from .conftest import COT, PROMPT, FakeEmbedder, FakeSampler

ARTIFACTS = Path(os.environ.get("PAPERJAX_TEST_ARTIFACTS",
                                Path(__file__).resolve().parents[2] / "runs" / "test-artifacts"))


def _answer(text):
    return extract_answer(text, "numeric") if "answer is" in text else ""


@pytest.fixture(scope="module")
def analysis(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("store")
    s = FakeSampler()
    tr = Trace.from_text(s, PROMPT, COT)
    store = RolloutStore(tmp, model=s.name, params=SamplingParams(max_new_tokens=200))
    S, F = sweep(s, tr, store, "apples", n=20, key=jax.random.key(0), answer_fn=_answer,
                 forced_suffix="\nSo the answer is ")
    a = analyze(tr, S, "10", F=F, embedder=FakeEmbedder(), key=jax.random.key(1), n_boot=200,
                problem_id="apples", model=s.name, prompt=PROMPT)
    a.resilience[1] = {"scores": [3, 0, 20], "persistence_rate": 1 / 3,
                       "abandonment_rate": 2 / 3, "mean_score": 23 / 3}
    return a


def test_html_is_self_contained(analysis):
    page = render_html(analysis)
    assert "<script src" not in page and "<link" not in page and "http" not in page
    assert page.count('class="sent"') == len(analysis.sentences)
    round_trip = CoTAnalysis.from_json(analysis.to_json())
    assert round_trip == analysis


def _driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        if os.environ.get("CI"):
            pytest.fail("chromium/chromedriver missing in CI (.ci/run installs them)")
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium "
                    "chromium-driver)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1280,900"):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(driver), options=opts)


def _fmt(x):  # the page's number format
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.3f}"


def test_browser_view_in_headless_chromium(analysis, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    page = write_html(tmp_path / "view.html", analysis)
    drv = _driver()
    try:
        drv.get(page.as_uri())
        sents = drv.find_elements(By.CSS_SELECTOR, "#cot .sent")
        assert len(sents) == len(analysis.sentences) == 5
        assert [s.text for s in sents] == [s[2] for s in analysis.sentences]
        metric = "counterfactual_importance_accuracy"
        v, lo, hi = analysis.metrics[2][metric]
        assert sents[2].get_attribute("title") == (f"#2 {metric} = {_fmt(v)} "
                                                   f"[{_fmt(lo)}, {_fmt(hi)}]")
        sents[2].click()
        detail = drv.find_element(By.ID, "detail")
        assert "Sentence 2 of 5" in detail.text
        row = drv.find_element(By.CSS_SELECTOR, f'#metric-table tr[data-metric="{metric}"]')
        cells = row.find_elements(By.TAG_NAME, "td")
        assert cells[1].text == _fmt(v) and cells[2].text == f"[{_fmt(lo)}, {_fmt(hi)}]"
        n_rows = len(drv.find_elements(By.CSS_SELECTOR, "#metric-table tr")) - 1
        assert n_rows == len(analysis.metrics[2])
        # the answer distribution after sentence 2 is S_3's
        after = analysis.distributions[3]
        top = max(after, key=after.get)
        assert re.search(rf"{top}.*{round(100 * after[top])}%", detail.text.replace("\n", " "))
        # switching the metric re-shades and re-labels
        Select(drv.find_element(By.ID, "metric")).select_by_value("resampling_importance_kl")
        v2 = analysis.metrics[0]["resampling_importance_kl"][0]
        assert sents[0].get_attribute("title").startswith(
            f"#0 resampling_importance_kl = {_fmt(v2)}")
        sents[1].click()
        assert "mean score 7.67 over 3 rollouts" in drv.find_element(By.ID, "resilience").text
        assert len(drv.find_elements(By.CSS_SELECTOR, "#chart circle")) == 5
        sents[2].click()
        Select(drv.find_element(By.ID, "metric")).select_by_value(metric)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "thought_branches_browser.png"
        assert drv.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    finally:
        drv.quit()


def test_plots(analysis, tmp_path):
    fig = plot_importance([analysis, analysis], "resampling_importance_accuracy")
    fig.savefig(tmp_path / "imp.png")
    fig = plot_resilience([0, 1, 20, 3], max_iterations=20, by_type={"plan": [0, 1],
                                                                     "compute": [20, 3]})
    fig.savefig(tmp_path / "res.png")
    assert (tmp_path / "imp.png").stat().st_size > 5000


def test_bad_inputs(analysis):
    with pytest.raises(ValueError, match="render_html: metric 'nope' is not in the analysis"):
        render_html(analysis, metric="nope")
    with pytest.raises(TypeError, match="render_html: analysis must be a CoTAnalysis"):
        render_html({})
    with pytest.raises(KeyError, match="no metric 'nope'"):
        analysis.metric("nope")
    with pytest.raises(ValueError, match="plot_resilience: no scores"):
        plot_resilience([])
    with pytest.raises(ValueError, match="plot_importance: no analyses"):
        plot_importance([])
    with pytest.raises(ValueError, match="analyze: no embedder given"):
        analyze(None, [], "1", embedder=None, key=jax.random.key(0))
