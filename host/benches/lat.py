#!/usr/bin/env python3
"""Usage: lat.py URL TOKEN BODY SECONDS (an empty BODY sends GET).

One keep-alive connection, requests back to back for D seconds; prints
n p50 p99 p99.9 max (ms) and the number of requests over 100 ms and their total time."""
import http.client, json, sys, time, urllib.parse
url, token, body, dur = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
u = urllib.parse.urlparse(url)
c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
lat = []
end = time.monotonic() + dur
while time.monotonic() < end:
    t0 = time.monotonic()
    c.request("POST" if body else "GET", u.path, body=body or None, headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    r = c.getresponse(); r.read()
    lat.append((time.monotonic() - t0) * 1000)
s = sorted(lat)
q = lambda p: s[min(len(s) - 1, int(len(s) * p))]
slow = [x for x in lat if x > 100]
print(f"n={len(s)} p50={q(.5):.2f} p99={q(.99):.2f} p99.9={q(.999):.2f} max={s[-1]:.2f} over100ms={len(slow)} sum_over100ms={sum(slow):.0f}ms")
