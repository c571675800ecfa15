"""The digest's funnel chart: a real PNG, Chinese drawn as Chinese, English when it can't be."""

from __future__ import annotations

import io
import logging
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bot.dialog import chart
from bot.dialog.chart import FunnelRow, cjk_font, funnel_png

TITLE = {"zh": "销售漏斗", "en": "Sales funnel"}
ROWS = [
    FunnelRow({"zh": "潜在的商机", "en": "Potential opportunity"}, 24, "¥1,250,000.00"),
    FunnelRow({"zh": "需求确认", "en": "Needs confirmed"}, 15, "¥980,500.00"),
    FunnelRow({"zh": "商务谈判", "en": "Negotiation"}, 4, "¥320,000.00"),
    FunnelRow({"zh": "赢单", "en": "Won"}, 0, ""),
]
NO_CJK_FONT = "no CJK font installed: apt-get install fonts-wqy-microhei"


def pixels(png: bytes) -> np.ndarray:
    """Grey levels (0 black .. 255 white), one row per image row."""
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(png)) as image:
        assert image.size == (chart.WIDTH_PX, chart.HEIGHT_PX) == (900, 600)
        return np.asarray(image.convert("L"))


def label_area(png: bytes) -> np.ndarray:
    """Left of the bars and below the title: where the stage names are drawn."""
    return pixels(png)[80:, : int(chart.WIDTH_PX * 0.30)]


@pytest.fixture
def no_cjk_font(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chart, "cjk_font", lambda: None)
    monkeypatch.setattr(chart, "_warned_no_cjk", False)


@pytest.fixture
def font_dirs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], None]]:
    """Look for fonts in the given directory only, scanned afresh."""

    def use(folder: Path) -> None:
        monkeypatch.setattr(chart, "_font_dirs", lambda: [str(folder)])
        chart._font_files.cache_clear()

    yield use
    chart._font_files.cache_clear()


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_renders_a_png_of_the_expected_size(lang: str) -> None:
    grey = pixels(funnel_png(ROWS, lang=lang, title=TITLE))
    assert (grey < 100).sum() > 2000  # bars and text, not a blank canvas


def test_chinese_glyphs_are_really_drawn() -> None:
    if cjk_font() is None:
        pytest.skip(NO_CJK_FONT)

    def one_label(text: str) -> np.ndarray:
        row = FunnelRow({"zh": text, "en": "Stage"}, 1, "")
        return label_area(funnel_png([row], lang="zh", title={"zh": "漏斗"}))

    zhong, guo = one_label("中"), one_label("国")
    for crop in (zhong, guo):
        assert (crop < 128).sum() >= 20, "the label area is (nearly) blank"
    # A missing glyph is drawn as the same empty box whatever the character.
    assert not np.array_equal(zhong, guo)


def test_cjk_font_has_chinese_glyphs() -> None:
    path = cjk_font()
    if path is None:
        pytest.skip(NO_CJK_FONT)
    assert chart._has_cjk_glyphs(path)
    assert cjk_font() == path  # cached


def test_fonts_are_found_in_the_users_font_directories(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    files = [
        tmp_path / "home/.fonts/a.ttf",
        tmp_path / "home/.local/share/fonts/b.otf",
        tmp_path / "data/fonts/nested/c.TTC",
        tmp_path / "data/fonts/nested/readme.txt",
    ]
    for file in files:
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(b"")
    found = set(chart._font_files.__wrapped__())
    assert {str(file) for file in files} - found == {str(files[-1])}


def test_cjk_font_found_by_scanning_a_font_directory(
    tmp_path: Path, font_dirs: Callable[[Path], None]
) -> None:
    installed = cjk_font()
    if installed is None:
        pytest.skip(NO_CJK_FONT)
    (tmp_path / "wqy-microhei.ttc").write_bytes(b"not a font")  # preferred by name, unreadable
    copy = tmp_path / "truetype" / "arphic" / "uming.ttc"
    copy.parent.mkdir(parents=True)
    shutil.copy(installed, copy)
    font_dirs(tmp_path)
    assert chart.cjk_font.__wrapped__() == str(copy)


def test_a_directory_without_a_cjk_font_gives_none(
    tmp_path: Path, font_dirs: Callable[[Path], None]
) -> None:
    latin = chart._installed(chart.LATIN_FONT)
    if latin is None:
        pytest.skip("DejaVu Sans not installed")
    assert not chart._has_cjk_glyphs(latin)
    shutil.copy(latin, tmp_path / "wqy-microhei.ttc")  # named as a CJK font, without Chinese
    (tmp_path / "NotoSansCJK-Regular.ttc").write_bytes(b"not a font")
    font_dirs(tmp_path)
    assert chart.cjk_font.__wrapped__() is None


def test_font_ranking() -> None:
    assert chart._rank("/x/wqy-microhei.ttc") == 0
    assert chart._rank("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc") is not None
    assert chart._rank("/x/DroidSansFallbackFull.ttf") is not None
    assert chart._rank("/x/wqy_zenhei.ttc") == chart._rank("/x/wqy-zenhei.ttc") == 1
    assert chart._rank("/x/DejaVuSans.ttf") is None


def test_without_dejavu_sans_pillows_own_font_draws_latin_text(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, font_dirs: Callable[[Path], None]
) -> None:
    font_dirs(tmp_path)  # no fonts at all
    monkeypatch.setattr(chart, "_bases", {})
    layout = chart._layout(1, None)
    assert layout.regular is None and layout.bold is None
    png = funnel_png([FunnelRow({"en": "Stage"}, 3, "¥1.00")], lang="en", title=TITLE)
    assert (label_area(png) < 128).sum() > 20  # the stage name
    assert (pixels(png)[:60] < 128).sum() > 20  # the title


def test_drawing_a_chart_does_not_import_matplotlib_or_numpy() -> None:
    code = (
        "import sys, bot.dialog.chart as c; "
        "c.funnel_png([c.FunnelRow({'zh': '赢单'}, 1, '¥1.00')], lang='zh', title={'zh': '漏斗'}); "
        "print(sorted({'matplotlib', 'numpy'} & set(sys.modules)))"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_without_cjk_font_chinese_falls_back_to_english_and_warns_once(
    no_cjk_font: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.dialog.chart"):
        first = funnel_png(ROWS, lang="zh", title=TITLE)
        second = funnel_png(ROWS, lang="zh", title=TITLE)
    english = funnel_png(ROWS, lang="en", title=TITLE)
    assert first == second == english
    warnings = [r for r in caplog.records if r.name == "bot.dialog.chart"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert "fonts-wqy-microhei" in warnings[0].getMessage()


def test_english_needs_no_cjk_font_and_logs_nothing(
    no_cjk_font: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.dialog.chart"):
        pixels(funnel_png(ROWS, lang="en", title=TITLE))
    assert not caplog.records


def test_no_deals_in_any_stage() -> None:
    rows = [FunnelRow(row.label, 0, "") for row in ROWS]
    for lang in ("zh", "en"):
        pixels(funnel_png(rows, lang=lang, title=TITLE))


def test_no_stages_at_all() -> None:
    pixels(funnel_png([], lang="en", title=TITLE))


def test_html_like_dollar_and_long_texts_render_inside_the_image() -> None:
    rows = [
        FunnelRow({"zh": "<b>重要</b> & <script>", "en": "<b>Key</b> & <i>x</i>"}, 3, "$1 – $2"),
        FunnelRow({"zh": "非常长的阶段名称" * 10, "en": "W" * 200}, 120, "¥" + "9" * 60 + ".00"),
        FunnelRow({"en": "only English\nwith a line break\tand_a $x^2$"}, -1, "<br/>"),
    ]
    for lang in ("zh", "en"):
        grey = pixels(funnel_png(rows, lang=lang, title={"en": "T" * 300, "zh": "标" * 300}))
        # Long texts are cut with an ellipsis rather than run off the image.
        assert (grey[:, :6] > 250).all() and (grey[:, -6:] > 250).all()


def test_many_stages() -> None:
    rows = [FunnelRow({"en": f"Stage {i}"}, i * 3, f"¥{i},000.00") for i in range(25)]
    pixels(funnel_png(rows, lang="en", title=TITLE))


def test_concurrent_renders_are_identical() -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        pngs = list(pool.map(lambda _: funnel_png(ROWS, lang="zh", title=TITLE), range(4)))
    assert len(set(pngs)) == 1
