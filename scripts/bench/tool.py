#!/usr/bin/env python3
"""Helpers of scripts/bench.sh that shell does badly, standard library only.

  tool.py fill KS FROM TO VALUE_BYTES TOKEN URL...   put-many keys k<FROM>..k<TO-1> into KS of
                                                     every URL, 10 000 a batch
  tool.py owners URL KS COUNT TOKEN ADDR OUT_DIR     split k0..k<COUNT-1> into OUT_DIR/owned
                                                     (owned by the node at ADDR) and others
  tool.py burst URL N TOKEN                          N GETs of URL at once, each on its own
                                                     connection; fails unless all answer 200
  tool.py fetches URL                                the total fetch count of a delay source
  tool.py report ROWS META OUT_DIR                   the scale table, and its JSON in OUT_DIR
"""

import base64
import http.client
import json
import os
import sys
import threading
import time
import urllib.parse

BATCH = 10_000


def connect(url):
    parts = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)


def call(conn, method, path, token, body=None):
    headers = {"Authorization": f"Bearer {token}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    return response.status, response.read()


def fill(ks, start, end, value_bytes, token, urls):
    """Each batch's body is made once and sent to every server at the same time (a thread
    each), so the servers parse and store while the next body is made."""
    value = base64.b64encode(b"x" * value_bytes).decode()
    conns = [connect(url) for url in urls]
    path = f"/v1/keyspaces/{ks}/put-many"
    started = time.monotonic()
    failures = []

    def send(url, conn, body):
        try:
            status, answer = call(conn, "POST", path, token, body)
        except OSError as e:
            failures.append(f"put-many to {url} failed: {e}")
            return
        if status != 200 or b'"error"' in answer:
            failures.append(f"put-many to {url} failed ({status}): {answer[:300]!r}")

    senders = []
    for low in range(start, end, BATCH):
        high = min(low + BATCH, end)
        body = ('{"entries":[' + ",".join(
            f'{{"key":"k{i}","value":"{value}"}}' for i in range(low, high)
        ) + "]}").encode()
        for sender in senders:
            sender.join()
        if failures:
            sys.exit(failures[0])
        senders = [threading.Thread(target=send, args=(url, conn, body)) for url, conn in zip(urls, conns)]
        for sender in senders:
            sender.start()
    for sender in senders:
        sender.join()
    if failures:
        sys.exit(failures[0])
    print(f"filled k{start}..k{end - 1} in {time.monotonic() - started:.1f}s", file=sys.stderr)


def owners(url, ks, count, token, addr, out_dir):
    conn = connect(url)
    owned, others = [], []
    for i in range(count):
        status, answer = call(conn, "GET", f"/_distcache/admin/owner/{ks}/k{i}", token)
        if status != 200:
            sys.exit(f"owner of k{i} failed ({status}): {answer[:300]!r}")
        (owned if json.loads(answer)["addr"] == addr else others).append(str(i))
    for name, keys in (("owned", owned), ("others", others)):
        with open(os.path.join(out_dir, name), "w") as f:
            f.write("\n".join(keys) + "\n")
    print(f"{len(owned)} {len(others)}")


def burst(url, n, token):
    parts = urllib.parse.urlsplit(url)
    conns = [connect(url) for _ in range(n)]
    for conn in conns:
        conn.connect()
    barrier = threading.Barrier(n)
    statuses = [None] * n

    def one(i):
        barrier.wait()
        try:
            statuses[i], _ = call(conns[i], "GET", parts.path, token)
        except OSError as e:
            statuses[i] = str(e)

    workers = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    bad = [s for s in statuses if s != 200]
    if bad:
        sys.exit(f"{len(bad)} of {n} concurrent GETs of {url} did not answer 200: {bad[:5]}")


def fetches(url):
    conn = connect(url)
    conn.request("GET", "/fetches")
    print(json.loads(conn.getresponse().read())["total"])


# Columns of a row line of the ROWS file (tab-separated), as bench/scale.sh writes them.
COLUMNS = ["group", "name", "param", "unit", "per",
           "rps", "p50_ms", "p99_ms", "cpu_us",
           "ref_rps", "ref_p50_ms", "ref_p99_ms", "ref_cpu_us",
           "rss_kib", "ref_rss_kib", "note"]


def report(rows_file, meta_file, out_dir):
    with open(meta_file) as f:
        meta = json.load(f)
    rows = []
    with open(rows_file) as f:
        for line in f:
            cells = line.rstrip("\n").split("\t")
            row = dict(zip(COLUMNS, cells))
            per = float(row.pop("per"))
            for k in ("rps", "p50_ms", "p99_ms", "cpu_us", "ref_rps", "ref_p50_ms", "ref_p99_ms", "ref_cpu_us",
                      "rss_kib", "ref_rss_kib"):
                row[k] = float(row[k]) if row.get(k) not in (None, "", "-") else None
            row["param"] = int(row["param"])
            # Per request → per unit (a get-many of 100 keys: keys/s, CPU per key).
            for k in ("rps", "ref_rps"):
                if row[k] is not None:
                    row[k] *= per
            for k in ("cpu_us", "ref_cpu_us"):
                if row[k] is not None:
                    row[k] /= per
            row["ratio"] = row["rps"] / row["ref_rps"] if row["ref_rps"] else None
            row["cpu_ratio"] = row["cpu_us"] / row["ref_cpu_us"] if row["ref_cpu_us"] else None
            rows.append(row)
    head = (f"{'scale, c=' + str(meta['connections']) + ', ' + meta['duration'] + ' each':<44} {'unit':>7} "
            f"{'distcache':>10} {'p99 ms':>8} {'cpu us':>8} {'reference':>10} {'p99 ms':>8} {'cpu us':>8} "
            f"{'ratio':>6} {'cpu/ref':>7}")
    print(head)
    fmt = lambda v, spec: "-" if v is None else format(v, spec)
    for r in rows:
        print(f"{r['name']:<44} {r['unit']:>7} {fmt(r['rps'], '10.0f')} {fmt(r['p99_ms'], '8.3f')} "
              f"{fmt(r['cpu_us'], '8.2f')} {fmt(r['ref_rps'], '10.0f')} {fmt(r['ref_p99_ms'], '8.3f')} "
              f"{fmt(r['ref_cpu_us'], '8.2f')} {fmt(r['ratio'], '6.2f')} {fmt(r['cpu_ratio'], '7.2f')}"
              + (f"  {r['note']}" if r.get("note") else ""))
    for line in meta.get("notes", []):
        print(line)
    doc = dict(meta, rows=rows)
    os.makedirs(out_dir, exist_ok=True)
    name = f"scale-{meta['commit']}-{meta['unix_time']}.json"
    with open(os.path.join(out_dir, name), "w") as f:
        json.dump(doc, f, indent=1)
    with open(os.path.join(out_dir, "scale-latest.json"), "w") as f:
        json.dump(doc, f, indent=1)
    print(f"written: {os.path.join(out_dir, name)} (and scale-latest.json)")


def main(argv):
    if not argv:
        sys.exit(__doc__)
    cmd, args = argv[0], argv[1:]
    if cmd == "fill":
        fill(args[0], int(args[1]), int(args[2]), int(args[3]), args[4], args[5:])
    elif cmd == "owners":
        owners(args[0], args[1], int(args[2]), args[3], args[4], args[5])
    elif cmd == "burst":
        burst(args[0], int(args[1]), args[2])
    elif cmd == "fetches":
        fetches(args[0])
    elif cmd == "report":
        report(args[0], args[1], args[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
