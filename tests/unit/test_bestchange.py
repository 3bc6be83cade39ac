"""BestChange's info.zip as a rate source (libs/bestchange.py), read from a recorded archive
(tests/fixtures/bestchange/info.zip, built by build_info_zip.py there): windows-1251, `;`-separated, CRLF."""
import io
import os
import zipfile
from decimal import Decimal as D, localcontext

import pytest

from libs import bestchange

ARCHIVE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "bestchange", "info.zip")
OURS = 5   # "Наш обменник" in the recording: left out of the competition


@pytest.fixture(scope="module")
def snapshot():
    with open(ARCHIVE, "rb") as f:
        return bestchange.read_info_zip(f.read())


def test_the_three_files_are_read_in_windows_1251(snapshot):
    assert snapshot.currencies[42] == bestchange.Currency(42, "Сбербанк", "SBERRUB")
    assert snapshot.exchangers[3] == "Гамма-обмен"
    assert len(snapshot.offers) == 10
    first = snapshot.offers[0]
    assert first == bestchange.Offer(10, 42, 1, D("1"), D("94.12"), D("2500000"), D("100"), D("50000"), None)
    assert snapshot.offers[7].city_id == 1


def test_offers_of_a_direction_best_first_without_ours(snapshot):
    offers = bestchange.offers_for(snapshot, "USDTTRC20", "SBERRUB", exclude_exchangers={OURS})
    assert [o.exchanger_id for o in bestchange.ranked(offers)] == [4, 2, 1, 3]   # 94.55 twice: larger reserve first
    assert bestchange.offers_for(snapshot, "Сбербанк", "Tether TRC20 (USDT)") == \
        bestchange.offers_for(snapshot, "SBERRUB", "USDTTRC20")
    assert bestchange.offers_for(snapshot, "USDTTRC20", "NOSUCH") == []


def test_cash_offers_are_per_city(snapshot):
    assert bestchange.offers_for(snapshot, "USDTTRC20", "CASHRUB") == []
    [moscow] = bestchange.offers_for(snapshot, "USDTTRC20", "CASHRUB", city_id=1)
    assert moscow.exchanger_id == 3


@pytest.mark.parametrize("n, rate", [(1, D("94.55")), (2, D("94.55")), (3, D("94.12")), (4, D("93.8")),
                                     (9, D("93.8"))])
def test_position_n_among_the_offers(snapshot, n, rate):
    offers = bestchange.offers_for(snapshot, "USDTTRC20", "SBERRUB", exclude_exchangers={OURS})
    assert bestchange.position_rate(offers, n) == rate


def test_floor_and_ceiling_hold_the_rate(snapshot):
    offers = bestchange.offers_for(snapshot, "USDTTRC20", "SBERRUB", exclude_exchangers={OURS})
    assert bestchange.position_rate(offers, 1, ceiling=D("94.5")) == D("94.5")
    assert bestchange.position_rate(offers, 4, floor=D("94")) == D("94")
    assert bestchange.position_rate(offers, 3, floor=D("94"), ceiling=D("95")) == D("94.12")
    with pytest.raises(ValueError):
        bestchange.position_rate(offers, 1, floor=D("95"), ceiling=D("94"))


def test_a_rate_below_one_is_exact(snapshot):
    offers = bestchange.offers_for(snapshot, "SBERRUB", "USDTTRC20")
    # 1 / 95.9 buys more than 1 / 96.25: exchanger 1 is the best
    with localcontext() as ctx:
        ctx.prec = 60
        assert bestchange.position_rate(offers, 1) == D(1) / D("95.9")
    assert [o.exchanger_id for o in bestchange.ranked(offers)] == [1, 2]


def test_no_offers_is_no_value_and_bad_positions_are_refused():
    assert bestchange.position_rate([], 1) is None
    for n in (0, -1, 1.5, True):
        with pytest.raises(ValueError):
            bestchange.position_rate([], n)


def _zip(**files):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, text in files.items():
            archive.writestr(name.replace("_dat", ".dat"), text.encode("windows-1251"))
    return out.getvalue()


def test_what_is_not_the_archive_is_refused_with_where():
    with pytest.raises(bestchange.BestChangeFormatError, match="not a zip"):
        bestchange.read_info_zip(b"<html>maintenance</html>")
    with pytest.raises(bestchange.BestChangeFormatError, match="bm_rates.dat is missing"):
        bestchange.read_info_zip(_zip(bm_cy_dat="1;0;A;A\n", bm_exch_dat="1;X\n"))
    with pytest.raises(bestchange.BestChangeFormatError, match="line 2: give is not a number"):
        bestchange.read_info_zip(_zip(bm_cy_dat="1;0;A;A\n", bm_exch_dat="1;X\n",
                                      bm_rates_dat="1;2;1;1;2;3\n1;2;1;x;2;3\n"))
    with pytest.raises(bestchange.BestChangeFormatError, match="above 0"):
        bestchange.read_info_zip(_zip(bm_cy_dat="1;0;A;A\n", bm_exch_dat="1;X\n", bm_rates_dat="1;2;1;0;2;3\n"))
    with pytest.raises(bestchange.BestChangeFormatError, match="finite"):
        bestchange.read_info_zip(_zip(bm_cy_dat="1;0;A;A\n", bm_exch_dat="1;X\n", bm_rates_dat="1;2;1;NaN;2;3\n"))
