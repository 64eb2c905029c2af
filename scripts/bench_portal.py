"""`make bench-portal`: how fast the portal's main pages are, and how heavy a first visit is.

Starts the assembled platform as processes (as the browser tests do, on its own embedded
PostgreSQL and port offset) with the demo population, signs a legal person in through the
enterprise code exactly as a browser does, then:

* server time of each main enterprise page (一图清, 金融超市, 政策一键配, 授权管理): `--runs`
  runs of `--requests` sequential requests each, timed from request to complete response on
  the loopback interface (the portal's own work plus its calls to the gateway behind it);
  per page the median and the worst of the runs' medians, and the slowest single request;
  targets: median under 150 ms;
* the bytes a first visit to 一图清 transfers (fresh browser cache, chromium): every response,
  headers and compressed bodies, summed from the browser's own accounting; target: under 1.5 MB.

The load average is printed before and after: on a loaded machine the figures mean little.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from scripts.assembled import PORT_OFFSET, Assembled, start_assembled
from scripts.launcher import STAFF_PROVIDER

PAGES = ("/e/", "/e/credit", "/e/policy", "/e/consents")
# The government console's main pages, timed the same way for the government operator.
GOV_PAGES = ("/gov/", "/gov/rankings?stage=growth", "/gov/evaluations", "/gov/objections")
TARGET_MS = 150.0
TARGET_BYTES = 1_500_000
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]


def sign_in(platform: Assembled, portal: str, uscc: str) -> httpx.Client:
    """The browser's enterprise-code login, step by step; returns the signed-in client."""
    client = httpx.Client(base_url=portal, timeout=30)
    start = client.get("/auth/esso/login")
    spappurl = parse_qs(urlsplit(start.headers["location"]).query)["spappurl"][0]
    sso = httpx.post(
        f"{platform.launcher.url('idp')}/simulate-login", data={"uscc": uscc}, timeout=30
    ).json()["ssotoken"]
    back = client.get(f"{spappurl}&{urlencode({'ssotoken': sso})}")
    if back.status_code != 303 or back.headers["location"] != "/e/":
        raise RuntimeError(f"sign-in failed: {back.status_code} {back.text[:200]}")
    return client


def sign_in_staff(portal: str, subject: str) -> httpx.Client:
    """The staff sign-in as a browser goes through it: the portal, the development provider's
    staff page and the account's 登录 button, the portal's callback."""
    from tests.staff_login import staff_buttons

    client = httpx.Client(base_url=portal, timeout=30)
    start = client.get("/auth/staff/login", params={"provider": STAFF_PROVIDER})
    page = client.get(start.headers["location"])
    button = next(b for b in staff_buttons(page.text) if b.account == subject)
    back = client.post(
        str(httpx.URL(start.headers["location"]).join(button.action)),
        data={"request": button.request, "account": button.account},
    )
    done = client.get(back.headers["location"])
    if done.status_code != 303 or done.headers["location"] != "/gov/":
        raise RuntimeError(f"staff sign-in failed: {done.status_code} {done.text[:200]}")
    return client


def time_pages(
    client: httpx.Client, runs: int, requests: int, pages: tuple[str, ...] = PAGES
) -> dict[str, list[list[float]]]:
    timings: dict[str, list[list[float]]] = {page: [] for page in pages}
    for page in pages:  # warm: the first request fills the portal's reference cache
        client.get(page).raise_for_status()
    for _ in range(runs):
        for page in pages:
            run = []
            for _ in range(requests):
                t0 = time.perf_counter()
                r = client.get(page)
                run.append((time.perf_counter() - t0) * 1000)
                r.raise_for_status()
            timings[page].append(run)
    return timings


def first_load_bytes(client: httpx.Client, portal: str) -> tuple[int, int]:
    """Bytes and requests of a first visit to 一图清 in chromium, with an empty cache."""
    from playwright.sync_api import Request, sync_playwright

    cookie = next(c for c in client.cookies.jar if c.name.endswith("portal_session"))
    total = 0
    count = 0
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        ctx = browser.new_context(viewport={"width": 375, "height": 812})
        ctx.add_cookies([{"name": cookie.name, "value": cookie.value or "", "url": portal}])
        page = ctx.new_page()
        finished: list[Request] = []
        page.on("requestfinished", lambda request: finished.append(request))
        page.goto(portal + "/e/", wait_until="networkidle")
        for request in finished:
            sizes = request.sizes()
            total += sizes["responseBodySize"] + sizes["responseHeadersSize"]
            count += 1
        browser.close()
    return total, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=5036, help="demo enterprises")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=30, help="requests per page per run")
    args = parser.parse_args()
    offset = int(os.environ.get("IP_BENCH_PORT_OFFSET", str(PORT_OFFSET + 2000)))
    print(f"load average before: {os.getloadavg()}")
    platform = start_assembled(Path("var/bench-portal"), size=args.size, port_offset=offset)
    try:
        portal = platform.launcher.url("portal")
        uscc = platform.scored_enterprises(1)[0]
        client = sign_in(platform, portal, uscc)
        timings = time_pages(client, args.runs, args.requests)
        staff = sign_in_staff(portal, "gov-0001")  # 陈思远, the government operator
        timings.update(time_pages(staff, args.runs, args.requests, GOV_PAGES))
        size, count = first_load_bytes(client, portal)
    finally:
        platform.close()
    print(f"load average after:  {os.getloadavg()}")
    print(f"\n{args.size} enterprises; {args.runs} runs x {args.requests} requests per page")
    print(
        f"{'page':26} {'median ms':>10} {'worst run':>10} {'slowest':>9}  target < {TARGET_MS:.0f}"
    )
    for page, runs in timings.items():
        medians = [statistics.median(run) for run in runs]
        overall = statistics.median([t for run in runs for t in run])
        slowest = max(t for run in runs for t in run)
        verdict = "ok" if overall < TARGET_MS else "OVER"
        print(f"{page:26} {overall:10.1f} {max(medians):10.1f} {slowest:9.1f}  {verdict}")
    verdict = "ok" if size < TARGET_BYTES else "OVER"
    megabytes = size / 1e6
    print(f"\nfirst load of 一图清: {megabytes:.2f} MB in {count} responses", end=" ")
    print(f"({verdict}, target < 1.5 MB)")


if __name__ == "__main__":
    main()
