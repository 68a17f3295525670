"""The report table: one entry per `report/getData` method of the Baidu Tongji API.

Streams, schemas, the README tables, the emulator and the tests all read this table, so a
report's method, metrics, dimension and parameters are stated here once. Plain data, no I/O.

Facts come from public client code and saved real responses. A NOTE marks each detail that
no real response showed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ValueKind(enum.Enum):
    """JSON Schema type of a metric column."""

    INTEGER = "integer"
    NUMBER = "number"
    STRING = "string"


@dataclass(frozen=True)
class Metric:
    """One metric the API returns: its API name, type, Chinese label and unit."""

    name: str
    kind: ValueKind
    chinese_name: str
    description: str


def _count(name: str, chinese: str, what: str) -> Metric:
    return Metric(name, ValueKind.INTEGER, chinese, f"{what} (count).")


def _percent(name: str, chinese: str, what: str) -> Metric:
    return Metric(
        name,
        ValueKind.NUMBER,
        chinese,
        f"{what}, in percent as the API gives it (17.92 means 17.92 %).",
    )


def _seconds(name: str, chinese: str, what: str) -> Metric:
    # NOTE: real responses show whole seconds. The column is a number so that a fractional
    # value, should the API send one, is kept instead of failing the sync.
    return Metric(name, ValueKind.NUMBER, chinese, f"{what}, in seconds.")


def _decimal(name: str, chinese: str, what: str) -> Metric:
    return Metric(name, ValueKind.NUMBER, chinese, f"{what}.")


METRICS: dict[str, Metric] = {
    metric.name: metric
    for metric in (
        _count("pv_count", "浏览量(PV)", "Page views"),
        _percent("pv_ratio", "浏览量占比", "Share of page views"),
        _count("visit_count", "访问次数", "Visits"),
        _count("visitor_count", "访客数(UV)", "Unique visitors"),
        _count("new_visitor_count", "新访客数", "New visitors"),
        _percent("new_visitor_ratio", "新访客比率", "Share of new visitors"),
        _count("ip_count", "IP数", "Distinct IP addresses"),
        _percent("bounce_ratio", "跳出率", "Bounce rate"),
        _seconds("avg_visit_time", "平均访问时长", "Average visit duration"),
        _decimal("avg_visit_pages", "平均访问页数", "Average pages per visit"),
        _count("trans_count", "转化次数", "Conversions"),
        _percent("trans_ratio", "转化率", "Conversion rate"),
        _decimal("avg_trans_cost", "平均转化成本", "Average cost per conversion, in yuan"),
        _decimal("income", "收益", "Income, in yuan"),
        _decimal("profit", "利润", "Profit, in yuan"),
        _percent("roi", "投资回报率", "Return on investment"),
        _count("visit1_count", "入口页次数", "Visits that entered on this page"),
        _count("outward_count", "贡献下游浏览量", "Page views contributed downstream"),
        _count("exit_count", "退出页次数", "Visits that left from this page"),
        _percent("exit_ratio", "退出率", "Exit rate"),
        _seconds("average_stay_time", "平均停留时长", "Average time on page"),
        _count("out_pv_count", "贡献浏览量", "Page views contributed by visits entering here"),
        _count("show_count", "展现量", "Ad impressions"),
        _count("clk_count", "点击量", "Ad clicks"),
        _decimal("cost_count", "消费", "Ad spend, in yuan"),
        _percent("ctr", "点击率", "Click-through rate"),
        _decimal("cpm", "千次展现成本", "Cost per thousand impressions, in yuan"),
        _count("in_visit_count", "进入访问次数", "Visits that arrived from the ad"),
        _percent("arrival_ratio", "抵达率", "Share of clicks that arrived on the site"),
        _percent("ratio", "占比", "Share of the total"),
    )
}


class Layout(enum.Enum):
    """How a method lays out its `result`, which decides how it is requested and converted."""

    DAILY_ROWS = "daily_rows"
    """`items[0]` contains one date label per row, so one range request returns every day."""

    DIMENSION = "dimension"
    """`items[0]` contains one dimension cell per row; read one day per request."""

    KEYED_SUBREPORTS = "keyed_subreports"
    """`result` has named sub-reports (overview/getCommonTrackRpt); read one day per request."""

    REALTIME = "realtime"
    """Latest visits with no dates (trend/latest/a), read newest first."""


@dataclass(frozen=True)
class CellKey:
    """One key of a dimension cell object that becomes its own column."""

    api_key: str
    column: str
    description: str


@dataclass(frozen=True)
class Filter:
    """An optional request parameter that narrows a report, with the values the API accepts.

    `allowed_values` is empty when any string is accepted (for example `area=province,4`).
    """

    name: str
    description: str
    allowed_values: tuple[str, ...] = ()


@dataclass(frozen=True)
class Report:
    """One `report/getData` method and everything the tap needs to know to read it."""

    method: str
    stream_name: str
    chinese_name: str
    description: str
    layout: Layout
    metrics: tuple[str, ...]
    """Metrics the tap requests, in this order; records map values by the response's `fields`."""

    dimension_field: str = ""
    """Name the API gives `fields[0]` (the dimension column)."""

    cell_keys: tuple[CellKey, ...] = ()
    """Known keys of the dimension cell object, besides `name`."""

    extra_columns: tuple[str, ...] = ()
    """Metrics the API returns without being asked (overview/getDistrictRpt adds `ratio`)."""

    fixed_params: tuple[tuple[str, str], ...] = ()
    """Parameters the tap always sends for this stream."""

    filters: tuple[Filter, ...] = ()
    """Parameters a custom report may set."""

    paged: bool = True
    """Whether the method honours `start_index`/`max_results` and returns `total`."""

    account_requirement: str = ""
    """Account type the method needs, empty when every site may use it."""

    @property
    def selected_by_default(self) -> bool:
        """Whether the stream is selected when the catalog names no selection."""
        return not self.account_requirement

    @property
    def gran(self) -> str:
        """Time grain the report is requested with: `day` unless `gran` is a fixed parameter."""
        return dict(self.fixed_params).get("gran", "day")

    @property
    def columns(self) -> tuple[str, ...]:
        """Metric columns of a record: the requested metrics, then the unrequested ones."""
        return self.metrics + tuple(c for c in self.extra_columns if c not in self.metrics)


STANDARD_METRICS = (
    "pv_count",
    "pv_ratio",
    "visit_count",
    "visitor_count",
    "new_visitor_count",
    "new_visitor_ratio",
    "ip_count",
    "bounce_ratio",
    "avg_visit_time",
    "avg_visit_pages",
    "trans_count",
    "trans_ratio",
)

TREND_METRICS = (
    "pv_count",
    "pv_ratio",
    "visit_count",
    "visitor_count",
    "new_visitor_count",
    "new_visitor_ratio",
    "ip_count",
    "bounce_ratio",
    "avg_visit_time",
    "avg_visit_pages",
    "trans_count",
    "trans_ratio",
    "avg_trans_cost",
    "income",
    "profit",
    "roi",
)

SOURCE = Filter(
    "source",
    "Traffic source: through (直接访问), search (搜索引擎) or link (外部链接).",
    ("through", "search", "link"),
)
CLIENT_DEVICE = Filter("clientDevice", "Device: pc or mobile; omit for all.", ("pc", "mobile"))
VISITOR = Filter("visitor", "Visitor type: new or old; omit for all.", ("new", "old"))
AREA = Filter("area", "Region: china, or province,<code> such as province,4 for 广东.")
VIEW_TYPE = Filter(
    "viewType", "Grouping: type (by source type) or site (by source site).", ("type", "site")
)
DOMAIN_TYPE = Filter(
    "domainType",
    "Link category: 1 社会化媒体, 2 导航网站, 4 电子邮箱.",
    ("1", "2", "4"),
)
MEDIA_FLAG = Filter(
    "flag",
    "Tracking level: from, plan, unit, word or idea.",
    ("from", "plan", "unit", "word", "idea"),
)
GRAN = Filter("gran", "Time grain: day, hour, week or month.", ("day", "hour", "week", "month"))

PAGE_ID = CellKey("pageId", "page_id", "Tongji page id, a decimal string that may exceed 2^63.")
DOMAIN_ID = CellKey(
    "domainId", "domain_id", "Tongji domain id, a decimal string (global per host)."
)
AREA_KEY = CellKey("area", "area", "Region code, for example province,32.")
SOURCE_KEY = CellKey("source", "source", "Source code, for example through, link or search,1.")

PROMOTION_ACCOUNT = "a Baidu promotion (商业推广) account"
PAID_EDITION = "a Tongji edition with 指定广告跟踪 (the free edition removed it)"

REPORTS: tuple[Report, ...] = (
    Report(
        method="overview/getTimeTrendRpt",
        stream_name="overview_time_trend",
        chinese_name="网站概况(趋势数据)",
        description="Daily site totals from the overview page.",
        layout=Layout.DAILY_ROWS,
        metrics=(
            "pv_count",
            "visitor_count",
            "ip_count",
            "bounce_ratio",
            "avg_visit_time",
            "trans_count",
        ),
        dimension_field="simple_date_title",
        paged=False,
    ),
    Report(
        method="overview/getDistrictRpt",
        stream_name="overview_district",
        chinese_name="网站概况(地域分布)",
        description="Page views by province from the overview page.",
        layout=Layout.DIMENSION,
        metrics=("pv_count",),
        extra_columns=("ratio",),
        dimension_field="simple_district_title",
        paged=False,
    ),
    Report(
        method="overview/getCommonTrackRpt",
        stream_name="overview_common_track",
        chinese_name="网站概况(来源网站、搜索词、入口页面、受访页面)",
        description=(
            "Top source sites, search words, landing pages and visited pages, and new versus "
            "returning visitors, from the overview page."
        ),
        layout=Layout.KEYED_SUBREPORTS,
        metrics=("pv_count",),
        extra_columns=(
            "ratio",
            "visitor_count",
            "avg_visit_time",
            "bounce_ratio",
            "avg_visit_pages",
        ),
        paged=False,
    ),
    Report(
        method="trend/time/a",
        stream_name="trend_time",
        chinese_name="趋势分析",
        description="Daily traffic trend.",
        layout=Layout.DAILY_ROWS,
        # NOTE: clients disagree on this list (16, 13 or 10 metrics). The tap requests all 16
        # and maps values through `fields`, so a server that drops some leaves them null.
        metrics=TREND_METRICS,
        dimension_field="simple_date_title",
        fixed_params=(("gran", "day"),),
        filters=(GRAN, SOURCE, CLIENT_DEVICE, VISITOR, AREA),
    ),
    Report(
        method="trend/latest/a",
        stream_name="trend_latest",
        chinese_name="实时访客",
        description="Latest visits with their visit detail (real-time visitors).",
        layout=Layout.REALTIME,
        metrics=(
            "start_time",
            "area",
            "source",
            "access_page",
            "keyword",
            "searchword",
            "is_ad",
            "visitorId",
            "ip",
            "visit_time",
            "visit_pages",
        ),
        fixed_params=(("order", "start_time,desc"),),
        filters=(SOURCE, CLIENT_DEVICE, VISITOR, AREA),
    ),
    Report(
        method="pro/product/a",
        stream_name="pro_product",
        chinese_name="推广方式",
        description="Paid search performance by promotion product.",
        layout=Layout.DIMENSION,
        metrics=(
            "show_count",
            "clk_count",
            "cost_count",
            "ctr",
            "cpm",
            "pv_count",
            "visit_count",
            "visitor_count",
            "new_visitor_count",
            "new_visitor_ratio",
            "in_visit_count",
            "bounce_ratio",
            "avg_visit_time",
            "avg_visit_pages",
            "arrival_ratio",
        ),
        # NOTE: the dimension field name and cell shape of pro/* were never seen in a real
        # response; records keep `name` and any other key of the cell.
        dimension_field="pro_product_title",
        account_requirement=PROMOTION_ACCOUNT,
    ),
    Report(
        method="pro/hour/a",
        stream_name="pro_hour",
        chinese_name="百度推广趋势",
        description="Paid search trend by hour of day.",
        layout=Layout.DIMENSION,
        metrics=TREND_METRICS,
        dimension_field="simple_date_title",
        account_requirement=PROMOTION_ACCOUNT,
    ),
    Report(
        method="source/all/a",
        stream_name="source_all",
        chinese_name="全部来源",
        description="Traffic by source type.",
        layout=Layout.DIMENSION,
        metrics=STANDARD_METRICS,
        dimension_field="source_type_title",
        cell_keys=(SOURCE_KEY,),
        filters=(VIEW_TYPE, CLIENT_DEVICE, VISITOR),
    ),
    Report(
        method="source/engine/a",
        stream_name="source_engine",
        chinese_name="搜索引擎",
        description="Traffic by search engine.",
        layout=Layout.DIMENSION,
        metrics=STANDARD_METRICS,
        dimension_field="source_engine_title",
        cell_keys=(
            SOURCE_KEY,
            CellKey("engineId", "engine_id", "Tongji search engine id, a decimal string."),
            CellKey("url", "url", "Search URL template of the engine."),
            CellKey("subEngineId", "sub_engine_id", "Sub-engine id, usually null."),
        ),
        filters=(CLIENT_DEVICE, AREA, VISITOR),
    ),
    Report(
        method="source/searchword/a",
        stream_name="source_searchword",
        chinese_name="搜索词",
        description="Traffic by search word.",
        layout=Layout.DIMENSION,
        metrics=STANDARD_METRICS,
        # NOTE: field name and cell keys never seen in a real response.
        dimension_field="source_searchword_title",
        filters=(SOURCE, CLIENT_DEVICE, VISITOR),
    ),
    Report(
        method="source/link/a",
        stream_name="source_link",
        chinese_name="外部链接",
        description="Traffic by referring site.",
        layout=Layout.DIMENSION,
        metrics=STANDARD_METRICS,
        dimension_field="source_link_title",
        cell_keys=(DOMAIN_ID,),
        filters=(VIEW_TYPE, DOMAIN_TYPE, CLIENT_DEVICE, VISITOR),
    ),
    Report(
        method="custom/media/a",
        stream_name="custom_media",
        chinese_name="指定广告跟踪",
        description="Traffic by tracked campaign (plan level by default).",
        layout=Layout.DIMENSION,
        metrics=STANDARD_METRICS,
        # NOTE: field name and cell keys never seen in a real response.
        dimension_field="custom_media_title",
        filters=(MEDIA_FLAG,),
        account_requirement=PAID_EDITION,
    ),
    Report(
        method="visit/toppage/a",
        stream_name="visit_toppage",
        chinese_name="受访页面",
        description="Traffic by visited page.",
        layout=Layout.DIMENSION,
        metrics=(
            "pv_count",
            "visitor_count",
            "ip_count",
            "visit1_count",
            "outward_count",
            "exit_count",
            "average_stay_time",
            "exit_ratio",
        ),
        dimension_field="visit_page_title",
        cell_keys=(PAGE_ID,),
        filters=(SOURCE, VISITOR),
    ),
    Report(
        method="visit/landingpage/a",
        stream_name="visit_landingpage",
        chinese_name="入口页面",
        description="Traffic by landing page.",
        layout=Layout.DIMENSION,
        metrics=(
            "visit_count",
            "visitor_count",
            "new_visitor_count",
            "new_visitor_ratio",
            "ip_count",
            "out_pv_count",
            "bounce_ratio",
            "avg_visit_time",
            "avg_visit_pages",
            "trans_count",
            "trans_ratio",
        ),
        # NOTE: assumed to carry pageId like visit/toppage/a; never seen in a real response.
        dimension_field="visit_landingpage_title",
        cell_keys=(PAGE_ID,),
    ),
    Report(
        method="visit/topdomain/a",
        stream_name="visit_topdomain",
        chinese_name="受访域名",
        description="Traffic by visited domain.",
        layout=Layout.DIMENSION,
        metrics=(
            "pv_count",
            "pv_ratio",
            "visit_count",
            "visitor_count",
            "new_visitor_count",
            "new_visitor_ratio",
            "ip_count",
            "bounce_ratio",
            "avg_visit_pages",
            "average_stay_time",
        ),
        # NOTE: assumed to carry domainId like source/link/a; never seen in a real response.
        dimension_field="visit_topdomain_title",
        cell_keys=(DOMAIN_ID,),
        filters=(SOURCE, VISITOR),
    ),
    Report(
        method="visit/district/a",
        stream_name="visit_district",
        chinese_name="地域分布(按省)",
        description="Traffic by province.",
        layout=Layout.DIMENSION,
        metrics=STANDARD_METRICS,
        dimension_field="visit_district_title",
        cell_keys=(AREA_KEY,),
        filters=(SOURCE, VISITOR),
    ),
    Report(
        method="visit/world/a",
        stream_name="visit_world",
        chinese_name="地域分布(按国家)",
        description="Traffic by country.",
        layout=Layout.DIMENSION,
        metrics=STANDARD_METRICS,
        # NOTE: assumed to carry an area code like visit/district/a; never seen for real.
        dimension_field="visit_world_title",
        cell_keys=(AREA_KEY,),
        filters=(SOURCE, VISITOR),
    ),
)

REPORTS_BY_METHOD: dict[str, Report] = {report.method: report for report in REPORTS}
REPORTS_BY_STREAM: dict[str, Report] = {report.stream_name: report for report in REPORTS}

REALTIME_FIELDS: dict[str, str] = {
    "start_time": "Visit start, Beijing time.",
    "area": "Visitor city or province (short name).",
    "source": "Traffic source object (fromType, url, tip).",
    "access_page": "Entry page URL.",
    "keyword": "Paid keyword, null when none.",
    "searchword": "Search word, null when none.",
    "is_ad": "Whether the visit came from an ad.",
    "visitorId": "Tongji visitor id, a decimal string.",
    "ip": "Visitor IP address.",
    "visit_time": "Visit duration in seconds, null while the visit is in progress (正在访问).",
    "visit_pages": "Pages viewed in the visit.",
}

COMMON_TRACK_SUBREPORTS: dict[str, str] = {
    "sourceSite": "source_site",
    "word": "search_word",
    "landingPage": "landing_page",
    "visitPage": "visit_page",
}
"""Keys of overview/getCommonTrackRpt's row-list sub-reports → `sub_report` column values."""

COMMON_TRACK_VISITOR_TYPES: dict[str, str] = {
    "newVisitor": "new_visitor",
    "oldVisitor": "old_visitor",
}
"""Keys inside its `visitType` sub-report → `name` column values (sub_report `visitor_type`)."""
