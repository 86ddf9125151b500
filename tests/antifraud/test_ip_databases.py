"""The operator's offline IP databases: MaxMind `.mmdb` and ip2region `.xdb` files, read alike."""

from __future__ import annotations

import base64
import ipaddress
import secrets
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from antifraud import divisions, regions
from antifraud.regions import IpRegions, ip2region_place
from service.settings import Settings
from tests.antifraud.xdb import write_xdb

if TYPE_CHECKING:
    from pathlib import Path

SHENZHEN = "中国|广东省|深圳市|电信|CN"


class TestIp2RegionRecords:
    @pytest.mark.parametrize(
        ("record", "place"),
        [
            # Current data: country, province, city, ISP, ISO code.
            (SHENZHEN, ("CN-GD", "CN-440300")),
            ("中国|浙江|杭州|联通|CN", ("CN-ZJ", "CN-330100")),  # short names
            ("中国|北京|北京市|联通|CN", ("CN-BJ", "CN-110100")),  # a municipality is its own city
            ("中国|内蒙古自治区|锡林郭勒盟|电信|CN", ("CN-NM", "CN-152500")),
            ("中国|广东省|0|电信|CN", ("CN-GD", None)),  # the province only
            ("中国|0|0|0|CN", ("CN", None)),
            ("Australia|Queensland|Brisbane|0|AU", ("AU-QLD", None)),
            ("United States|California|San Jose|xTom|US", ("US-CA", None)),
            ("Japan|0|0|0|JP", ("JP", None)),
            # Older data: country, region (0), province, city, ISP; countries named in Chinese.
            ("中国|0|广东省|深圳市|阿里云", ("CN-GD", "CN-440300")),
            ("中国|0|香港|0|0", ("HK", None)),  # as located scans there: HK, not CN-HK
            ("美国|0|华盛顿|0|谷歌", ("US", None)),
            ("0|0|0|内网IP|内网IP", (None, None)),
            ("火星|0|0|0|0", (None, None)),
            # Not a record this reader understands: unknown rather than a guess.
            ("中国|广东省|深圳市", (None, None)),
            ("", (None, None)),
        ],
    )
    def test_a_record_names_its_place(self, record: str, place: tuple[str | None, str | None]) -> None:
        assert ip2region_place(record) == place

    @given(st.text(max_size=60))
    def test_any_record_gives_a_known_region_or_none(self, record: str) -> None:
        region, city = ip2region_place(record)
        assert region is None or regions.is_region(region)
        assert city is None or (regions.is_territory(city) and divisions.province_of(city) == region)


def _segments(version: int) -> st.SearchStrategy[list[tuple[int, int]]]:
    """Sorted, disjoint address ranges (some of them crossing many of the vector index's cells)."""
    top = 2**32 - 1 if version == 4 else 2**128 - 1
    bounds = st.lists(st.integers(0, top), min_size=2, max_size=40, unique=True).map(sorted)
    return bounds.map(lambda points: [(points[n], points[n + 1] - 1) for n in range(0, len(points) - 1, 2)])


class TestIp2RegionFiles:
    @pytest.mark.parametrize("version", [4, 6])
    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(data=st.data())
    def test_every_address_gets_the_place_of_its_segment_and_others_none(
        self, tmp_path: Path, version: int, data: st.DataObject
    ) -> None:
        segments = [seg for seg in data.draw(_segments(version)) if seg[0] <= seg[1]]
        places = ["Australia|Queensland|0|0|AU", SHENZHEN, "Japan|0|0|0|JP"]
        path = tmp_path / f"v{version}.xdb"
        address = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
        as_text = [
            (str(address(first)), str(address(last)), places[n % 3])
            for n, (first, last) in enumerate(segments)
        ]
        write_xdb(path, version, as_text)
        databases = IpRegions([path])
        try:
            for n, (first, last) in enumerate(segments):
                inside = data.draw(st.integers(first, last))
                assert databases.place_of(str(address(inside))) == ip2region_place(places[n % 3])
            outside = data.draw(st.integers(0, 2**32 - 1 if version == 4 else 2**128 - 1))
            if not any(first <= outside <= last for first, last in segments):
                assert databases.place_of(str(address(outside))) == (None, None)
        finally:
            databases.close()

    def test_each_file_answers_its_own_ip_version_and_the_first_that_knows_wins(self, tmp_path: Path) -> None:
        v4, v6, mmdb = tmp_path / "v4.xdb", tmp_path / "v6.xdb", tmp_path / "city.mmdb"
        write_xdb(
            v4, 4, [("113.118.0.0", "113.119.255.255", SHENZHEN), ("1.0.0.0", "1.0.0.255", "Japan|0|0|0|JP")]
        )
        write_xdb(v6, 6, [("240e::", "240e:ffff::", "中国|北京|北京市|电信|CN")])
        writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoIP2-City")
        writer.insert_network(IPSet(["1.0.0.0/24", "2604::/16"]), {"country": {"iso_code": "US"}})
        writer.to_db_file(str(mmdb))
        databases = IpRegions([v4, v6, mmdb])
        try:
            assert databases.place_of("113.118.113.77") == ("CN-GD", "CN-440300")
            assert databases.place_of("240e:3b7::1") == ("CN-BJ", "CN-110100")
            assert databases.place_of("1.0.0.1") == ("JP", None)  # the xdb comes first
            assert databases.place_of("2604::1") == ("US", None)  # only the MaxMind file knows it
            assert databases.place_of("8.8.8.8") == (None, None)
            assert databases.place_of("not an address") == (None, None)
        finally:
            databases.close()

    def test_a_file_of_an_unknown_structure_fails_the_start(self, tmp_path: Path) -> None:
        path = tmp_path / "future.xdb"
        write_xdb(path, 4, [("1.0.0.0", "1.0.0.255", "Japan|0|0|0|JP")])
        content = bytearray(path.read_bytes())
        content[0] = 9  # structure version 9
        path.write_bytes(bytes(content))
        with pytest.raises(ValueError, match="structure version"):
            IpRegions([path])
        with pytest.raises(FileNotFoundError):
            IpRegions([tmp_path / "missing.xdb"])

    def test_a_damaged_file_places_nothing_and_never_fails_a_scan(self, tmp_path: Path) -> None:
        """Cut short after its vector index (the segment index gone): addresses are unknown, no error."""
        path = tmp_path / "cut.xdb"
        write_xdb(path, 4, [("113.118.0.0", "113.119.255.255", SHENZHEN)])
        path.write_bytes(path.read_bytes()[: 256 + 256 * 256 * 8 + 4])
        databases = IpRegions([path])
        try:
            assert databases.place_of("113.118.113.77") == (None, None)
        finally:
            databases.close()

    def test_the_setting_lists_files_separated_by_commas(self, tmp_path: Path) -> None:
        env = {
            "ONECODE_HOME": str(tmp_path),
            "ONECODE_MASTER_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        }
        assert Settings.from_env(env).ip_databases == ()
        v4, v6 = tmp_path / "v4.xdb", tmp_path / "v6.xdb"
        v4.touch()
        v6.touch()
        both = Settings.from_env({**env, "ONECODE_IP_DATABASE": f"{v4}, {v6}"})
        assert both.ip_databases == (v4, v6)
