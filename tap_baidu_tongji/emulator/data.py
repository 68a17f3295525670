"""Deterministic synthetic traffic for the emulator.

Every number comes from a `random.Random` seeded with a SHA-256 digest of its coordinates
(site, day, hour, report …), never from Python's per-process randomized `hash()`, so the same
request returns the same rows in every process and on every call.

Traffic is built bottom-up: per site, day and hour a set of additive quantities (page views,
visits, bounces, seconds …). A day is the sum of its hours, and a dimension report splits a
day among the members of its catalogue (provinces, engines, pages …). Metrics are derived
from the quantities in `results.py`.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

BEIJING = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")
"""China has had no daylight saving time since 1991, so a fixed UTC+8 offset is exact."""

QUANTITY_KEYS = (
    "pv",
    "visits",
    "visitors",
    "new_visitors",
    "ips",
    "bounces",
    "visit_seconds",
    "conversions",
    "income_fen",
    "cost_fen",
    "entries",
    "outward",
    "exits",
    "stay_seconds",
    "out_pv",
    "shows",
    "clicks",
    "ad_visits",
)
"""Additive per-hour quantities; money is in fen (0.01 yuan) so that sums stay integers."""

Quantities = dict[str, int]


def stable_rng(*parts: object) -> random.Random:
    """Return a generator seeded by the SHA-256 digest of `parts`, identical in every process."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def stable_fraction(*parts: object) -> float:
    """Return a number in [0, 1) fixed by `parts`."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def stable_id(*parts: object) -> str:
    """Return an 18- to 20-digit decimal id fixed by `parts`; about half exceed 2^63."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    value = int.from_bytes(digest[:8], "big")
    if value < 10**17:
        value += 10**17
    return str(value)


def empty_quantities() -> Quantities:
    return dict.fromkeys(QUANTITY_KEYS, 0)


def add_quantities(total: Quantities, part: Quantities) -> None:
    for key in QUANTITY_KEYS:
        total[key] += part[key]


def sum_quantities(parts: Iterable[Quantities]) -> Quantities:
    total = empty_quantities()
    for part in parts:
        add_quantities(total, part)
    return total


def scale_quantities(quantities: Quantities, factor: float) -> Quantities:
    return {key: int(value * factor) for key, value in quantities.items()}


# --- Sites -------------------------------------------------------------------------------


def default_sites() -> list[dict[str, object]]:
    """Return the three demo sites, shaped as `config/getSiteList` lists them."""
    return [
        {
            "site_id": 16847648,
            "domain": "www.example.com",
            "status": 0,
            "create_time": "2019-03-18 10:24:31",
            "sub_dir_list": [
                {
                    "sub_dir_id": 16847701,
                    "name": "帮助中心",
                    "status": 0,
                    "create_time": "2019-05-02 16:03:12",
                    "sub_dir_list": [],
                }
            ],
        },
        {
            "site_id": 16901234,
            "domain": "www.example.com/blog",
            "status": 0,
            "create_time": "2021-08-26 09:12:45",
            "sub_dir_list": [],
        },
        {
            # Created recently, so a range that starts earlier shows the "--" run that Tongji
            # returns for days before tracking began.
            "site_id": 17025518,
            "domain": "shop.example.cn",
            "status": 1,
            "create_time": "2025-09-01 14:30:00",
            "sub_dir_list": [],
        },
    ]


BEIJING_ZONE = ZoneInfo("Asia/Shanghai")
VISIBLE_UNTIL = dt.datetime.now(BEIJING_ZONE).replace(tzinfo=None)
"""Start of this process in Beijing time, naive like the visit times."""


@dataclass(frozen=True)
class SiteInfo:
    """Site or sub-directory attributes that the data generator uses."""

    site_id: int
    domain: str
    created: dt.date
    scale: int
    """Typical page views per day."""
    page_count: int = 0
    """Paths in the visit/toppage/a and visit/landingpage/a catalogues; a count below the
    built-in paths changes nothing."""


def site_index(
    sites: Sequence[dict[str, object]], *, page_count: int = 0, traffic_scale: float = 1.0
) -> dict[int, SiteInfo]:
    """Index sites and their (nested) sub-directories by id; a sub-directory has its own data.

    `page_count` and `traffic_scale` (a factor on every site's page views) let benchmarks ask
    for thousands of rows per day; the defaults keep the demo data.
    """
    index: dict[int, SiteInfo] = {}

    def visit(entry: dict[str, object], domain: str, id_key: str) -> None:
        site_id = int(str(entry[id_key]))
        created = dt.datetime.strptime(str(entry["create_time"]), "%Y-%m-%d %H:%M:%S").date()
        scale = int((300 + int(stable_fraction("scale", site_id) * 4000)) * traffic_scale)
        index[site_id] = SiteInfo(site_id, domain, created, scale, page_count)
        children = entry.get("sub_dir_list") or []
        assert isinstance(children, list)
        for child in children:
            visit(child, domain, "sub_dir_id")

    for site in sites:
        visit(site, str(site["domain"]), "site_id")
    return index


# --- Hourly traffic ----------------------------------------------------------------------

# Relative page views per Beijing hour, 00 to 23: quiet at night, peaks mid-morning and evening.
HOUR_WEIGHTS = (
    3, 2, 1, 1, 1, 2, 3, 5, 8, 10, 11, 10, 8, 9, 10, 10, 9, 8, 8, 9, 10, 9, 7, 5,
)  # fmt: skip


@functools.lru_cache(maxsize=8192)
def _hour_quantities_cached(site: SiteInfo, day: dt.date) -> tuple[tuple[int, ...], ...]:
    rng = stable_rng("day", site.site_id, day.isoformat())
    if day < site.created:
        return ()
    # About one day in fourteen has no traffic at all: Tongji shows "--" for such days.
    if rng.random() < 0.07:
        return tuple(tuple(0 for _ in QUANTITY_KEYS) for _ in range(24))

    weekday_factor = 0.75 if day.weekday() >= 5 else 1.0
    day_pv = site.scale * weekday_factor * rng.uniform(0.6, 1.4)
    pages_per_visit = rng.uniform(1.3, 3.2)
    visits_per_visitor = rng.uniform(1.05, 1.5)
    new_share = rng.uniform(0.55, 0.9)
    bounce_share = rng.uniform(0.25, 0.75)
    seconds_per_visit = rng.uniform(30, 420)
    conversion_share = rng.uniform(0.0, 0.04)

    def whole(value: float) -> int:
        # Random rounding keeps small hours from rounding every share down to zero.
        return int(value + rng.random())

    hours = []
    weight_total = sum(HOUR_WEIGHTS)
    for weight in HOUR_WEIGHTS:
        pv = whole(day_pv * weight / weight_total * rng.uniform(0.5, 1.5))
        visits = min(max(whole(pv / pages_per_visit), 1), pv)
        visitors = min(max(whole(visits / visits_per_visitor), 1), visits)
        new_visitors = min(whole(visitors * new_share), visitors)
        ips = min(max(whole(visitors * rng.uniform(0.85, 1.0)), 1), visitors)
        bounces = min(whole(visits * bounce_share), visits)
        visit_seconds = whole(visits * seconds_per_visit)
        conversions = min(whole(visits * conversion_share), visits)
        income_fen = conversions * rng.randint(500, 20000)
        shows = whole(pv * rng.uniform(2.0, 6.0))
        clicks = whole(shows * rng.uniform(0.01, 0.08))
        cost_fen = clicks * rng.randint(30, 400)
        ad_visits = whole(clicks * rng.uniform(0.6, 0.95))
        entries = visits
        exits = visits
        outward = max(pv - visits, 0)
        stay_seconds = whole(pv * seconds_per_visit / pages_per_visit)
        out_pv = pv
        values = {
            "pv": pv,
            "visits": visits,
            "visitors": visitors,
            "new_visitors": new_visitors,
            "ips": ips,
            "bounces": bounces,
            "visit_seconds": visit_seconds,
            "conversions": conversions,
            "income_fen": income_fen,
            "cost_fen": cost_fen,
            "entries": entries,
            "outward": outward,
            "exits": exits,
            "stay_seconds": stay_seconds,
            "out_pv": out_pv,
            "shows": shows,
            "clicks": clicks,
            "ad_visits": ad_visits,
        }
        hours.append(tuple(values[key] for key in QUANTITY_KEYS))
    return tuple(hours)


def hour_quantities(site: SiteInfo, day: dt.date) -> list[Quantities] | None:
    """Return 24 hourly quantities of a day, or None before the site started tracking."""
    hours = _hour_quantities_cached(site, day)
    if not hours:
        return None
    return [dict(zip(QUANTITY_KEYS, hour, strict=True)) for hour in hours]


def day_quantities(site: SiteInfo, day: dt.date) -> Quantities | None:
    """Return the quantities of a whole day, or None before the site started tracking."""
    hours = hour_quantities(site, day)
    return None if hours is None else sum_quantities(hours)


def split_quantities(total: Quantities, weights: Sequence[float]) -> list[Quantities]:
    """Split every quantity by `weights` with largest-remainder rounding, so parts sum to it."""
    weight_sum = sum(weights) or 1.0
    parts = [empty_quantities() for _ in weights]
    for key in QUANTITY_KEYS:
        shares = [total[key] * w / weight_sum for w in weights]
        floors = [int(s) for s in shares]
        remainder = total[key] - sum(floors)
        order = sorted(range(len(weights)), key=lambda i: shares[i] - floors[i], reverse=True)
        for i in order[:remainder]:
            floors[i] += 1
        for part, value in zip(parts, floors, strict=True):
            part[key] = value
    return parts


# --- Dimension catalogues ----------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """One dimension value: its display name and the cell keys the API attaches to it."""

    name: str
    attributes: tuple[tuple[str, object], ...] = ()
    popularity: float = 1.0

    @property
    def key(self) -> str:
        return self.name


PROVINCES: tuple[tuple[int, str], ...] = (
    (0, "其他"), (1, "北京"), (2, "上海"), (3, "天津"), (4, "广东"), (5, "福建"), (8, "海南"),
    (9, "安徽"), (10, "贵州"), (11, "甘肃"), (12, "广西"), (13, "河北"), (14, "河南"),
    (15, "黑龙江"), (16, "湖北"), (17, "湖南"), (18, "吉林"), (19, "江苏"), (20, "江西"),
    (21, "辽宁"), (22, "内蒙古"), (23, "宁夏"), (24, "青海"), (25, "山东"), (26, "山西"),
    (27, "陕西"), (28, "四川"), (29, "西藏"), (30, "新疆"), (31, "云南"), (32, "浙江"),
    (33, "重庆"), (34, "香港"), (35, "台湾"), (36, "澳门"),
)  # fmt: skip
"""Province area codes as observed in real visit/district/a responses (6 and 7 never seen)."""

# Relative weight of the big provinces; the rest get weight 1.
PROVINCE_POPULARITY = {"广东": 9.0, "北京": 7.0, "上海": 6.0, "浙江": 6.0, "江苏": 5.0}

ENGINES: tuple[tuple[str, str, str, float], ...] = (
    ("1", "百度", "www.baidu.com/s?wd=", 20.0),
    ("2", "Google", "www.google.com/search?q=", 4.0),
    ("4", "搜狗", "www.sogou.com/web?query=", 2.0),
    ("13", "必应", "cn.bing.com/search?q=", 3.0),
    ("14", "360搜索", "www.so.com/s?ie=utf-8&q=", 2.5),
    ("22", "神马搜索", "m.sm.cn/s?q=", 1.5),
)
"""Engine id, name, search URL template and relative popularity."""

# NOTE: Tongji's country area codes were never seen in a real response; these are invented.
COUNTRIES: tuple[tuple[str, str, float], ...] = (
    ("中国", "country,1", 40.0),
    ("美国", "country,2", 3.0),
    ("日本", "country,3", 1.5),
    ("新加坡", "country,4", 1.2),
    ("德国", "country,5", 0.8),
    ("英国", "country,6", 0.8),
    ("韩国", "country,7", 0.7),
    ("加拿大", "country,8", 0.5),
    ("澳大利亚", "country,9", 0.5),
    ("法国", "country,10", 0.4),
    ("俄罗斯", "country,11", 0.3),
    ("其他", "country,0", 0.6),
)

SEARCH_WORDS = (
    "百度统计", "网站统计工具", "如何查看网站流量", "example", "示例网站", "在线商城",
    "博客 教程", "python 教程", "数据分析入门", "网站访问统计", "免费建站", "优惠券",
    "退货政策", "客服电话", "新品上市", "春季促销", "夏季新款", "会员积分", "物流查询",
    "发票开具", "帮助中心", "API 文档", "开发者文档", "下载安装", "常见问题", "联系我们",
    "example.com 登录", "账号注册", "密码找回", "价格对比",
)  # fmt: skip

LINK_HOSTS = (
    "link.zhihu.com", "weibo.com", "www.douban.com", "mp.weixin.qq.com", "tieba.baidu.com",
    "www.bilibili.com", "juejin.cn", "www.cnblogs.com", "blog.csdn.net", "github.com",
    "www.jianshu.com", "news.ycombinator.com", "www.v2ex.com", "segmentfault.com",
    "www.toutiao.com", "www.163.com", "www.sohu.com", "www.qq.com", "hao.360.com",
    "www.hao123.com", "mail.qq.com", "mail.163.com", "t.co", "www.reddit.com",
    "192.168.1.20", "10.0.0.8:8080", "localhost:3000", "www.oschina.net", "www.ithome.com",
    "www.36kr.com", "sspai.com",
)  # fmt: skip
"""Referring hosts, including bare and private addresses as real link reports show."""

PAGE_PATHS = (
    "/", "/index.html", "/about", "/contact", "/products", "/products/1001", "/products/1002",
    "/products/1003", "/cart", "/checkout", "/help", "/help/faq", "/help/returns",
    "/news", "/news/2025/launch", "/news/2025/spring-sale", "/search?q=%E4%BC%98%E6%83%A0",
    "/%E5%85%B3%E4%BA%8E%E6%88%91%E4%BB%AC", "/docs", "/docs/api", "/docs/install",
    "/login", "/register", "/account", "/account/orders", "/blog", "/blog/hello-world",
    "/blog/python-tips", "/blog/data-analysis", "/tags/python", "/tags/seo", "/sitemap.xml",
    "/#/home", "/#/fblog", "/m/", "/m/products", "/en/", "/en/about", "/privacy", "/terms",
)  # fmt: skip

MEDIA_NAMES = (
    "春季促销",
    "品牌推广",
    "新品首发",
    "会员拉新",
    "节日活动",
    "搜索广告",
    "信息流",
    "邮件营销",
)

PROMOTION_PRODUCTS = ("搜索推广", "信息流推广", "品牌专区", "聚屏推广")

SOURCE_TYPES = (
    ("直接访问", "through", 5.0),
    ("搜索引擎", "search", 4.0),
    ("外部链接", "link", 2.0),
)


def hour_label(hour: int) -> str:
    return f"{hour:02d}:00 - {hour:02d}:59"


def catalogue(method: str, site: SiteInfo, params: dict[str, str]) -> list[Member]:
    """Return every dimension value a method can report for a site.

    Cell keys are filled in later from the report table. A member only carries the keys whose
    value cannot be derived from its name (engine ids, area codes, source codes).
    """
    host = site.domain.split("/", 1)[0]
    base_path = "/" + site.domain.split("/", 1)[1] if "/" in site.domain else ""
    if method in ("visit/district/a", "overview/getDistrictRpt"):
        return [
            Member(name, (("area", f"province,{code}"),), PROVINCE_POPULARITY.get(name, 1.0))
            for code, name in PROVINCES
        ]
    if method == "visit/world/a":
        return [Member(name, (("area", area),), weight) for name, area, weight in COUNTRIES]
    if method == "source/engine/a":
        return [
            Member(
                name,
                (
                    ("source", f"search,{engine_id}"),
                    ("engineId", engine_id),
                    ("url", url),
                    ("subEngineId", None),
                ),
                weight,
            )
            for engine_id, name, url, weight in ENGINES
        ]
    if method == "source/all/a":
        if params.get("viewType") == "site":
            # NOTE: the viewType=site cell shape was never seen in a real response; this
            # lists source sites with the source code of their type.
            members = [Member("直接访问", (("source", "through"),), 5.0)]
            members += [
                Member(url.split("/", 1)[0], (("source", f"search,{engine_id}"),), weight)
                for engine_id, _, url, weight in ENGINES
            ]
            members += [Member(h, (("source", "link"),), 0.5) for h in LINK_HOSTS[:10]]
            return members
        return [Member(name, (("source", code),), weight) for name, code, weight in SOURCE_TYPES]
    if method == "source/searchword/a":
        return [Member(word, (), 1.0 / (i + 1)) for i, word in enumerate(SEARCH_WORDS)]
    if method == "source/link/a":
        return [Member(f"http://{h}", (), 1.0 / (i + 1) ** 0.7) for i, h in enumerate(LINK_HOSTS)]
    if method in ("visit/toppage/a", "visit/landingpage/a"):
        paths = list(PAGE_PATHS)
        paths += [f"/archive/{i}.html" for i in range(len(paths), site.page_count)]
        pages = [
            Member(f"https://{host}{base_path}{path}", (), 1.0 / (i + 1) ** 0.8)
            for i, path in enumerate(paths)
        ]
        pages.append(Member("http://localhost:8080/", (), 0.05))
        return pages
    if method == "visit/topdomain/a":
        bare = host.removeprefix("www.")
        return [
            Member(host, (), 10.0),
            Member(f"m.{bare}", (), 4.0),
            Member(f"static.{bare}", (), 0.5),
        ]
    if method == "custom/media/a":
        level = params.get("flag", "plan")
        return [Member(f"{name}-{level}", (), 1.0 / (i + 1)) for i, name in enumerate(MEDIA_NAMES)]
    if method == "pro/product/a":
        return [Member(name, (), 1.0 / (i + 1)) for i, name in enumerate(PROMOTION_PRODUCTS)]
    if method == "pro/hour/a":
        return [Member(hour_label(h), (), float(HOUR_WEIGHTS[h])) for h in range(24)]
    # A method added to the report table without its own catalogue still gets data.
    return [Member(f"{method} {i + 1}", (), 1.0 / (i + 1)) for i in range(12)]


def dimension_day_rows(
    method: str, site: SiteInfo, day: dt.date, params: dict[str, str]
) -> list[tuple[Member, Quantities]]:
    """Split one day's traffic among the catalogue; members without page views are left out."""
    total = day_quantities(site, day)
    if total is None or total["pv"] == 0:
        return []
    members = catalogue(method, site, params)
    rng = stable_rng("rows", method, site.site_id, day.isoformat(), params.get("viewType", ""))
    # A quiet day reaches fewer members, as on a real site.
    reach = min(len(members), max(2, int(len(members) * min(1.0, total["pv"] / 600 + 0.2))))
    chosen = sorted(rng.sample(range(len(members)), reach))
    weights = [members[i].popularity * rng.uniform(0.3, 1.7) for i in chosen]
    parts = split_quantities(total, weights)
    return [(members[i], part) for i, part in zip(chosen, parts, strict=True) if part["pv"] > 0]


# --- Real-time visitors ------------------------------------------------------------------

CITIES = (
    ("北京", 1), ("上海", 2), ("广州", 4), ("深圳", 4), ("杭州", 32), ("南京", 19),
    ("成都", 28), ("武汉", 16), ("西安", 27), ("哈尔滨", 15), ("厦门", 5), ("红河", 31),
    ("香港", 34), ("其他", 0),
)  # fmt: skip

BROWSERS = (
    ("Google Chrome", "chrome", "pc", "Win 10", "pc", "1920x1080"),
    ("Safari移动版", "safari", "mobile", "iPhone", "ios", "390x844"),
    ("手机百度", "other", "mobile", "Android 12.0", "android", "360x800"),
    ("Microsoft Edge", "edge", "pc", "Win 11", "pc", "2560x1440"),
    ("QQ浏览器", "other", "pc", "Win 7", "pc", "1600x900"),
    ("Firefox", "firefox", "pc", "macOS", "pc", "1440x900"),
)  # fmt: skip

ISPS = ("电信", "联通", "移动", "")


@dataclass
class Visit:
    """One real-time visit: its row values and its detail object."""

    start: dt.datetime
    row: dict[str, object]
    detail: dict[str, object]
    tags: dict[str, str] = field(default_factory=dict)
    """Filter values this visit matches (source, clientDevice, visitor, area)."""


@functools.lru_cache(maxsize=64)
def _visits_cached(site: SiteInfo, today: dt.date) -> tuple[Visit, ...]:
    rng = stable_rng("latest", site.site_id, today.isoformat())
    count = 40 + int(site.scale / 25) + rng.randint(0, 30)
    host = site.domain.split("/", 1)[0]
    day_start = dt.datetime.combine(today, dt.time(0, 0))
    seconds = sorted((rng.randint(0, 86399) for _ in range(count)), reverse=True)
    visits = []
    for index, offset in enumerate(seconds):
        start = day_start + dt.timedelta(seconds=offset)
        city, province = rng.choice(CITIES)
        browser, browser_type, device, os_name, os_type, resolution = rng.choice(BROWSERS)
        page = f"https://{host}{rng.choice(PAGE_PATHS)}"
        kind = rng.choices(("through", "search", "link"), weights=(5, 4, 2))[0]
        searchword = "--"
        source: dict[str, object]
        if kind == "through":
            source = {"fromType": "直接访问", "tip": "", "url": None}
        elif kind == "search":
            _, engine, url, _ = rng.choice(ENGINES)
            searchword = rng.choice(SEARCH_WORDS)
            source = {"fromType": engine, "url": f"https://{url}{searchword}"}
            kind = "search"
        else:
            link = rng.choice(LINK_HOSTS)
            source = {"fromType": f"http://{link}", "url": f"http://{link}/"}
            if rng.random() < 0.5:
                source["tip"] = ""
        pages = rng.randint(1, 6)
        # The most recent visits are still going on, which Tongji shows as 正在访问.
        in_progress = index < 3 or rng.random() < 0.05
        duration: int | str = "正在访问" if in_progress else rng.randint(1, 1800)
        visitor_id = stable_id("visitor", site.site_id, today.isoformat(), index)
        is_new = rng.random() < 0.6
        octets = (
            rng.randint(1, 223),
            rng.randint(0, 255),
            rng.randint(0, 255),
            rng.randint(1, 254),
        )
        ip = ".".join(str(octet) for octet in octets)
        paths: list[list[object]] = []
        clock = start
        for step in range(pages):
            last = step == pages - 1
            stay: int | str
            if last and in_progress:
                stay = "正在访问"
            else:
                stay = rng.choice((rng.randint(1, 300), str(rng.randint(1, 300))))
            paths.append(
                [clock.strftime("%H:%M:%S"), stay, f"https://{host}{rng.choice(PAGE_PATHS)}"]
            )
            clock += dt.timedelta(seconds=rng.randint(5, 120))
        previous = start - dt.timedelta(minutes=rng.randint(30, 20000))
        last_visit = "首次访问" if is_new else previous.strftime("%Y/%m/%d %H:%M:%S")
        detail: dict[str, object] = {
            "accessPage": page,
            "antiCode": "--",
            "browser": browser,
            "browserType": browser_type,
            "color": "24-bit",
            "cookie": "支持",
            "deviceType": device,
            "endPage": paths[-1][2],
            "flash": "",
            "fromType": dict(source),
            "from_word": "--",
            "ipStatus": 0,
            "isp": rng.choice(ISPS),
            "java": "不支持",
            "language": "中文(简体)",
            "lastVisitTime": last_visit,
            "os": os_name,
            "osType": os_type,
            "paths": paths,
            "resolution": resolution,
            "userId": "0",
            "visitorFrequency": str(1 if is_new else rng.randint(2, 30)),
            "visitorStatus": 0,
            "visitorType": "新访客" if is_new else "老访客",
        }
        # NOTE: the value form of is_ad and keyword was never seen in a real response.
        row: dict[str, object] = {
            "start_time": start.strftime("%Y/%m/%d %H:%M:%S"),
            "area": city,
            "source": source,
            "access_page": page,
            "keyword": "--",
            "searchword": searchword,
            "is_ad": 0,
            "visitorId": visitor_id,
            "ip": ip,
            "visit_time": duration,
            "visit_pages": str(pages),
        }
        tags = {
            "source": kind,
            "clientDevice": device,
            "visitor": "new" if is_new else "old",
            "area": f"province,{province}",
        }
        visits.append(Visit(start, row, detail, tags))
    return tuple(visits)


def latest_visits(site: SiteInfo, today: dt.date, params: dict[str, str]) -> list[Visit]:
    """Return the site's visits of `today`, newest first, narrowed by the filter parameters.

    On the Beijing day the emulator started, visits later than its start are left out, as a
    real server cannot have them yet. The cut-off stays fixed while the process runs, so a
    test that reads the same visits twice gets the same response.
    """
    visits = list(_visits_cached(site, today))
    if today == VISIBLE_UNTIL.date():
        visits = [v for v in visits if v.start <= VISIBLE_UNTIL]
    for name in ("source", "clientDevice", "visitor"):
        value = params.get(name)
        if value:
            visits = [v for v in visits if v.tags[name] == value.split(",", 1)[0]]
    area = params.get("area")
    if area and area.startswith("province,"):
        visits = [v for v in visits if v.tags["area"] == area]
    return visits
