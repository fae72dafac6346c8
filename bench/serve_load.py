#!/usr/bin/env python3
"""Load test of `convnet serve` on localhost (standard library only).

For each model (a small CNN and ResNet-18, random-ish weights from a one-epoch training on a
generated image folder) and each batching mode (dynamic batching vs --max-batch 1), starts
the server, then for 1, 8 and 64 concurrent clients sends PNG images over keep-alive
connections until a request count or a time cap is reached, and reports requests/s and
p50/p99 latency. The server's resident memory (VmRSS) is sampled every 0.2 s. After the load,
malformed and oversized requests must get 4xx. Prints a Markdown table.

    python3 bench/serve_load.py [--bin PATH] [--requests 400] [--seconds 20]
"""

import argparse
import http.client
import os
import re
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib


def png_bytes(w, h, seed):
    """An RGB PNG of w x h pixels (no imaging library needed)."""
    rows = []
    for y in range(h):
        row = bytearray([0])
        for x in range(w):
            row += bytes(((x * 7 + seed * 31) % 256, (y * 5 + seed) % 256, (x + y + seed) % 256))
        rows.append(bytes(row))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b""))


def make_checkpoint(binary, work, model, size):
    data = os.path.join(work, f"data-{model}")
    for c in range(3):
        d = os.path.join(data, f"class{c}")
        os.makedirs(d, exist_ok=True)
        for i in range(4):
            with open(os.path.join(d, f"{i}.png"), "wb") as f:
                f.write(png_bytes(size, size, c * 10 + i))
    out = os.path.join(work, f"run-{model}")
    subprocess.run([binary, "train", "--model", model, "--data", data, "--epochs", "1",
                    "--batch-size", "4", "--val-split", "0", "--out", out],
                   check=True, stdout=subprocess.DEVNULL)
    return out


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class Server:
    def __init__(self, binary, run, extra):
        self.proc = subprocess.Popen([binary, "serve", run, "--port", "0"] + extra,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        if not m:
            raise SystemExit(f"server did not start: {line!r}")
        self.port = int(m.group(1))
        self.rss = []
        self.done = False
        self.sampler = threading.Thread(target=self._sample, daemon=True)
        self.sampler.start()

    def _sample(self):
        while not self.done:
            r = rss_kib(self.proc.pid)
            if r:
                self.rss.append(r)
            time.sleep(0.2)

    def stop(self):
        self.done = True
        self.proc.terminate()  # SIGTERM: graceful stop
        out, _ = self.proc.communicate(timeout=60)
        return self.proc.returncode, out


def request(conn, method, path, body=b"", ctype="image/png"):
    conn.request(method, path, body=body, headers={"Content-Type": ctype})
    r = conn.getresponse()
    return r.status, r.read()


def load(port, clients, images, max_requests, max_seconds):
    lat, codes, batches = [], {}, []
    lock = threading.Lock()
    count = [0]
    start = threading.Barrier(clients + 1)
    deadline = [0.0]

    def client(k):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        start.wait()
        i = k
        while True:
            with lock:
                if count[0] >= max_requests or time.time() > deadline[0]:
                    break
                count[0] += 1
            t = time.perf_counter()
            try:
                status, body = request(conn, "POST", "/predict", images[i % len(images)])
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                status, body = 0, b""
            dt = time.perf_counter() - t
            i += clients
            m = re.search(rb'"batch":(\d+)', body)
            with lock:
                lat.append(dt)
                codes[status] = codes.get(status, 0) + 1
                if m:
                    batches.append(int(m.group(1)))
        conn.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    deadline[0] = time.time() + max_seconds
    t0 = time.perf_counter()
    start.wait()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat.sort()
    pct = lambda p: 1000 * lat[min(len(lat) - 1, int(p * len(lat)))]
    return {
        "n": len(lat), "rps": len(lat) / wall, "p50": pct(0.50), "p99": pct(0.99),
        "codes": codes, "mean_batch": sum(batches) / max(1, len(batches)),
    }


def bad_requests(port, max_body):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    got = {}
    for name, body, ctype in [
        ("garbage", b"definitely not an image", "image/png"),
        ("truncated", png_bytes(32, 32, 1)[:60], "image/png"),
        ("empty", b"", "image/png"),
        ("multipart without boundary", png_bytes(8, 8, 1), "multipart/form-data"),
        ("oversized", b"\0" * (max_body + 1), "image/png"),
    ]:
        try:
            got[name] = request(conn, "POST", "/predict", body, ctype)[0]
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            got[name] = "connection closed"
    return got


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/convnet-target"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=os.path.join(target, "release", "convnet"))
    ap.add_argument("--requests", type=int, default=400, help="per level (clients x mode x model)")
    ap.add_argument("--seconds", type=float, default=20.0, help="time cap per level")
    ap.add_argument("--clients", default="1,8,64")
    ap.add_argument("--models", default="mnist-cnn:28,resnet18:224")
    ap.add_argument("--rounds", type=int, default=2,
                    help="repeat the client levels, to see that memory stays flat")
    args = ap.parse_args()
    max_body = 1 << 20
    levels = [int(c) for c in args.clients.split(",")] * args.rounds
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs, "
          f"binary {args.bin}, load average {os.getloadavg()[0]:.1f}", flush=True)
    rows, failures = [], []
    with tempfile.TemporaryDirectory() as work:
        for spec in args.models.split(","):
            model, size = spec.split(":")
            run = make_checkpoint(args.bin, work, model, int(size))
            # Clients send images at the model's input size (decode + resize stay cheap).
            images = [png_bytes(int(size), int(size), s) for s in range(8)]
            for mode, extra in [("batching (max 32, 5 ms)", ["--max-batch", "32", "--max-wait-ms", "5"]),
                                ("no batching", ["--max-batch", "1"])]:
                server = Server(args.bin, run, extra + ["--http-threads", "64", "--queue", "256",
                                                         "--max-body-bytes", str(max_body)])
                # Warm-up, then the memory baseline.
                load(server.port, 4, images, 16, 30)
                rss0 = rss_kib(server.proc.pid)
                for clients in levels:
                    r = load(server.port, clients, images, args.requests, args.seconds)
                    r["rss"] = (rss_kib(server.proc.pid) or 0) / 1024
                    rows.append((model, mode, clients, r))
                    print(f"{model:10} {mode:24} {clients:3} clients: {r['n']:5} req "
                          f"{r['rps']:8.1f} req/s  p50 {r['p50']:8.1f} ms  p99 {r['p99']:8.1f} ms  "
                          f"mean batch {r['mean_batch']:.1f}  RSS {r['rss']:.0f} MiB  codes {r['codes']}",
                          flush=True)
                    if set(r["codes"]) - {200}:
                        failures.append(f"{model} {mode} {clients}: {r['codes']}")
                bad = bad_requests(server.port, max_body)
                rss1 = rss_kib(server.proc.pid)
                peak = max(server.rss) if server.rss else None
                code, out = server.stop()
                print(f"{model:10} {mode:24} RSS after warm-up {rss0 / 1024:.0f} MiB, at end "
                      f"{rss1 / 1024:.0f} MiB, peak {peak / 1024:.0f} MiB; bad requests {bad}; "
                      f"exit {code}: {out.strip().splitlines()[-1] if out.strip() else ''}", flush=True)
                if any(not (isinstance(v, int) and 400 <= v < 500) for v in bad.values()):
                    failures.append(f"{model} {mode}: bad requests answered {bad}")
                if code != 0:
                    failures.append(f"{model} {mode}: exit code {code} on SIGTERM")
    print()
    print("| model | mode | clients | requests | req/s | p50 ms | p99 ms | mean batch | RSS after, MiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for model, mode, clients, r in rows:
        print(f"| {model} | {mode} | {clients} | {r['n']} | {r['rps']:.1f} | {r['p50']:.1f} "
              f"| {r['p99']:.1f} | {r['mean_batch']:.1f} | {r['rss']:.0f} |")
    if failures:
        print("\nFAILURES:\n" + "\n".join(failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
