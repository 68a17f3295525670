"""English and Chinese texts of `tap-baidu-tongji-auth`.

The language comes from the LC_ALL, LC_MESSAGES, LANG and LANGUAGE environment variables,
first non-empty one wins, and not from the `locale` module: many servers lack the zh_CN
locale, and then `locale` falls back to C even when LANG is zh_CN.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

ENGLISH = "en"
CHINESE = "zh"

LOCALE_VARIABLES = ("LC_ALL", "LC_MESSAGES", "LANG", "LANGUAGE")


def detect_language(environ: Mapping[str, str] | None = None) -> str:
    """Return `CHINESE` when the first set locale variable starts with `zh`, else `ENGLISH`."""
    environ = os.environ if environ is None else environ
    for name in LOCALE_VARIABLES:
        value = environ.get(name, "").strip()
        if value:
            # LANGUAGE may list several languages separated by colons, such as zh_CN:en.
            return CHINESE if value.split(":")[0].lower().startswith("zh") else ENGLISH
    return ENGLISH


TEXTS: dict[str, dict[str, str]] = {
    "prompt_client_id": {
        ENGLISH: "API Key (client_id): ",
        CHINESE: "API Key（client_id）：",
    },
    "prompt_client_secret": {
        ENGLISH: "Secret Key (client_secret, not shown while typing): ",
        CHINESE: "Secret Key（client_secret，输入时不显示）：",
    },
    "prompt_code": {
        ENGLISH: "Authorization code: ",
        CHINESE: "授权码：",
    },
    "open_url": {
        ENGLISH: (
            "1. Open this address in a browser and log in with the Baidu account that owns "
            "the Tongji sites:\n\n   {url}\n"
        ),
        CHINESE: "1. 在浏览器中打开以下地址，并用拥有百度统计站点的百度账号登录：\n\n   {url}\n",
    },
    "code_explanation": {
        ENGLISH: (
            "2. After you allow access, the result page shows an authorization code. The code "
            "is valid for 10 minutes and can be used only once.\n"
        ),
        CHINESE: "2. 同意授权后，结果页面会显示授权码。授权码 10 分钟内有效，且只能使用一次。\n",
    },
    "exchanging": {
        ENGLISH: "Exchanging the authorization code for a token pair...",
        CHINESE: "正在用授权码换取令牌……",
    },
    "success": {
        ENGLISH: (
            "Authorization succeeded. The token pair is saved in the token store:\n"
            "   {path}\n"
            "The access token expires {expires_at}; the tap refreshes it by itself."
        ),
        CHINESE: (
            "授权成功。令牌已保存到令牌存储文件：\n"
            "   {path}\n"
            "访问令牌的过期时间为 {expires_at}，tap 会自动刷新。"
        ),
    },
    "next_steps": {
        ENGLISH: (
            "Next steps with Meltano (run them in the Meltano project folder):\n"
            "   meltano config set tap-baidu-tongji client_id {client_id}\n"
            "   meltano config set tap-baidu-tongji token_store_path {path}\n"
            "   meltano config unset tap-baidu-tongji refresh_token\n"
            "The last command matters only if refresh_token was set before: an old refresh "
            "token in the configuration would start a new token chain from that token.\n"
            "Also set client_secret to the Secret Key if it is not set yet; Meltano keeps "
            "sensitive settings in .env, not in meltano.yml.\n"
            "Keep the token store private and back it up: it holds the only valid refresh token."
        ),
        CHINESE: (
            "使用 Meltano 的后续步骤（在 Meltano 项目目录中执行）：\n"
            "   meltano config set tap-baidu-tongji client_id {client_id}\n"
            "   meltano config set tap-baidu-tongji token_store_path {path}\n"
            "   meltano config unset tap-baidu-tongji refresh_token\n"
            "只有之前设置过 refresh_token 时才需要最后一条命令：配置中的旧刷新令牌会让 tap "
            "从该令牌重新开始令牌链。\n"
            "如果尚未设置 client_secret，也请将其设为 Secret Key；Meltano 会把敏感设置保存在 "
            ".env 中，而不是 meltano.yml。\n"
            "请妥善保管并备份令牌存储文件：其中保存着唯一有效的刷新令牌。"
        ),
    },
    "error_missing_value": {
        ENGLISH: "Error: {name} is required.",
        CHINESE: "错误：必须提供 {name}。",
    },
    "error_invalid_grant": {
        ENGLISH: (
            "Error: the authorization code was rejected (invalid_grant). A code is valid for "
            "10 minutes and can be used only once. Open the address again, get a new code "
            "and run this command again."
        ),
        CHINESE: (
            "错误：授权码被拒绝（invalid_grant）。授权码 10 分钟内有效，且只能使用一次。"
            "请重新打开授权地址获取新的授权码，然后再次运行本命令。"
        ),
    },
    "error_invalid_client": {
        ENGLISH: (
            "Error: the API Key or Secret Key was rejected (invalid_client). Check both values "
            "on the Tongji data export page (管理 > 数据导出服务) and run this command again."
        ),
        CHINESE: (
            "错误：API Key 或 Secret Key 被拒绝（invalid_client）。请在百度统计“管理 > "
            "数据导出服务”页面核对这两个值，然后再次运行本命令。"
        ),
    },
    "error_redirect_uri_mismatch": {
        ENGLISH: (
            "Error: the redirect address does not match (redirect_uri_mismatch). This command "
            "uses redirect_uri=oob: get the code from the address printed above, not from "
            "another authorization link."
        ),
        CHINESE: (
            "错误：回调地址不匹配（redirect_uri_mismatch）。本命令使用 redirect_uri=oob："
            "请从上面打印的地址获取授权码，而不是其他授权链接。"
        ),
    },
    "error_oauth_other": {
        ENGLISH: "Error: the token endpoint rejected the request ({error}: {description}).",
        CHINESE: "错误：令牌接口拒绝了请求（{error}：{description}）。",
    },
    "error_unexpected_response": {
        ENGLISH: (
            "Error: the token endpoint returned HTTP {status} without a token pair. The code "
            "may have been used up; get a new code and run this command again."
        ),
        CHINESE: (
            "错误：令牌接口返回 HTTP {status}，但没有返回令牌。授权码可能已被使用；"
            "请获取新的授权码后再次运行本命令。"
        ),
    },
    "error_connection": {
        ENGLISH: "Error: the request to {url} failed ({detail}). Check the network and retry.",
        CHINESE: "错误：请求 {url} 失败（{detail}）。请检查网络后重试。",
    },
    "error_store": {
        ENGLISH: "Error: {detail}",
        CHINESE: "错误：无法写入令牌存储文件。详细信息（英文）：{detail}",
    },
    "cancelled": {
        ENGLISH: "Cancelled.",
        CHINESE: "已取消。",
    },
}


def text(key: str, language: str, **values: object) -> str:
    """Return the text `key` in `language`, with `values` filled in."""
    return TEXTS[key][language].format(**values)
