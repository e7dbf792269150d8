"""A soak of real processes with faults: does the monitor's count equal the truth afterwards?

Real processes: the embedded broker, a builder with its monitor and a server, both on a snapshot
store in an S3-compatible server (moto) reached through a TCP proxy of this script (a store
outage closes the proxy: connections reset and refused for 10-60 s; moto keeps everything in
memory, so a real restart of it would wipe the store rather than interrupt it). The broker keeps
its log in memory by default and is frozen (SIGSTOP 5-20 s) instead of restarted; with
``--broker s3`` it keeps its log in moto and is restarted, but on moto that cannot sustain these
rates (each produce batch is an object, each fetch lists them). Traffic: events produced to
Kafka at ``--rate``, GET /recommend at ``--requests`` a second, and the likes and dislikes of
simulated users (recommender.online.clicks' click model) posted to POST /interactions 0.2-5 s
after each answer, most naming its recommendation_id. Faults at random moments: SIGKILL and
SIGTERM of the builder, SIGKILL of the builder while its monitor replays, SIGKILL of the server,
broker freezes or restarts, store outages. At the end the last builder catches up and is stopped
with SIGTERM, and the monitor's online-status.json is compared with a brute-force join of
complete dumps of both topics.

    PYTHONPATH=. .venv/bin/python bench/soak.py --minutes 30 --seed 1 [--rate 500] [--requests 50]
        [--broker memory|s3] [--gap 15,45] [--without "broker freeze"] [--workdir DIR]

Prints a table of figures, and writes it with both sides of the comparison to DIR/result.json;
both topics' records to DIR/exposures.jsonl and DIR/interactions.jsonl.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from confluent_kafka import Producer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recommender.broker import EmbeddedBroker, free_port  # noqa: E402
from recommender.events import format_event, parse_values  # noqa: E402
from recommender.kafka import KafkaSettings, create_topic  # noqa: E402
from recommender.online import ONLINE_STATUS  # noqa: E402
from recommender.online.attribution import CLOCK_TOLERANCE_MS  # noqa: E402
from recommender.online.clicks import taste_group  # noqa: E402
from recommender.online.exposures import RECOMMENDATION_HEADER, decode_exposure  # noqa: E402
from recommender.store import open_store  # noqa: E402
from recommender.synthetic import TasteModel  # noqa: E402

WINDOW_MS = 30 * 60_000
TASTE = TasteModel(users=20_000, items=1000, groups=8)


class Daemon:
    """One ``python -m recommender`` process; its output appended to WORK/<name>.log."""

    def __init__(self, work: Path, name: str, args: list[str], env: dict[str, str]) -> None:
        self.name, self.log = name, work / f"{name}.log"
        self._out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "recommender", *args], cwd=ROOT, stdout=self._out,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 90.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()
        return self.proc.returncode


class Proxy(threading.Thread):
    """A TCP proxy to the S3 server; ``down()`` resets every connection and refuses new ones."""

    def __init__(self, target: int) -> None:
        super().__init__(daemon=True)
        self.port, self.target = free_port(), target
        self.loop = asyncio.new_event_loop()
        self.server: asyncio.base_events.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    def run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    async def _pipe(self, reader, writer) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _client(self, reader, writer) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.close()
            return
        self.writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self.writers -= {writer, up_writer}

    async def _up(self) -> None:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", self.port,
                                                 reuse_address=True)  # fmt: skip

    async def _down(self) -> None:
        assert self.server is not None
        self.server.close()
        for w in list(self.writers):
            w.transport.abort()  # a reset, as a dying server's connections
        self.writers.clear()
        self.server = None

    def up(self) -> None:
        asyncio.run_coroutine_threadsafe(self._up(), self.loop).result(10)

    def down(self) -> None:
        asyncio.run_coroutine_threadsafe(self._down(), self.loop).result(10)


# -- traffic -------------------------------------------------------------------------------------


class Traffic:
    """Events to Kafka, requests and the likes that follow them; what was accepted, by value."""

    def __init__(self, kafka: KafkaSettings, topic: str, base: str, a, seed: int) -> None:
        self.kafka, self.topic, self.base, self.a = kafka, topic, base, a
        self.rng = np.random.default_rng(seed)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.sent: Counter[bytes] = Counter()  # produced and acknowledged (Kafka or 2xx)
        self.unsure: Counter[bytes] = Counter()  # a POST that failed: maybe produced
        self.http: Counter[tuple[str, int]] = Counter()
        self.figures: Counter[str] = Counter()
        self.pending: list = []  # (due, seq, [like dicts])
        self.threads = [threading.Thread(target=self._events, daemon=True),
                        threading.Thread(target=self._likes, daemon=True)]  # fmt: skip
        self.threads += [threading.Thread(target=self._requests, args=(k,), daemon=True)
                         for k in range(a.clients)]  # fmt: skip

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def _delivered(self, err, msg) -> None:
        with self.lock:
            if err is None:
                self.sent[msg.value()] += 1
            else:
                self.figures["events_failed"] += 1
                self.unsure[msg.value()] += 1

    def _events(self) -> None:
        producer = Producer(
            {
                "bootstrap.servers": self.kafka.bootstrap_servers,
                "log_level": 2,
                "linger.ms": 100,
                "enable.idempotence": True,
                "message.timeout.ms": 600_000,
            }
        )
        start, done = time.monotonic(), 0
        while not self.stop.is_set():
            due = int((time.monotonic() - start) * self.a.rate) - done
            if due > 0:
                for value in TASTE.values(*TASTE.sample(due, self.rng)):
                    producer.produce(self.topic, value, key=value.partition(b":")[0],
                                     on_delivery=self._delivered)  # fmt: skip
                done += due
                self.figures["events_produced"] += due
            producer.poll(0.05)
        self.figures["events_unflushed"] = producer.flush(120)

    def _call(self, conn, method: str, path: str, body=None):
        route = path.split("?")[0]
        try:
            data = None if body is None else json.dumps(body).encode()
            conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            payload = response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            conn.close()
            status, payload = 0, b""
        with self.lock:
            self.http[(route, status)] += 1
        return status, payload

    def _connection(self):
        u = urllib.parse.urlsplit(self.base)
        return http.client.HTTPConnection(u.hostname, u.port, timeout=15)

    def _requests(self, k: int) -> None:
        rng, conn = random.Random(k * 7919 + 1), self._connection()
        period = self.a.clients / self.a.requests
        next_at = time.monotonic() + rng.random() * period
        while not self.stop.is_set():
            time.sleep(max(0.0, next_at - time.monotonic()))
            next_at = max(next_at + period, time.monotonic() - 1.0)
            user = TASTE.user_id(rng.randrange(TASTE.users))
            status, payload = self._call(conn, "GET", f"/recommend?user={user}&n=10")
            if status != 200:
                if status == 0:
                    time.sleep(0.5)
                continue
            answer = json.loads(payload)
            group, likes = TASTE.user_group(user), []
            for position, entry in enumerate(answer.get("items", [])):
                item = entry["item"]
                mine = taste_group(TASTE, item) == group
                like = {"user": user, "item": item}
                if rng.random() < 0.8:  # most clients name the answer, some don't
                    like["recommendation_id"] = answer["recommendation_id"]
                if mine and rng.random() < 0.6 / (1 + position):
                    likes.append(like)
                elif not mine and rng.random() < 0.03:
                    likes.append({**like, "weight": -1})
            if likes:
                with self.lock:
                    heapq.heappush(self.pending, (time.monotonic() + rng.uniform(0.2, 5.0),
                                                  rng.random(), likes))  # fmt: skip

    def _likes(self) -> None:
        conn = self._connection()
        while not (self.stop.is_set() and not self.pending):
            likes = []  # every like that is due, in one request (one POST at a time keeps up)
            with self.lock:
                while self.pending and self.pending[0][0] <= time.monotonic() and len(likes) < 500:
                    likes += heapq.heappop(self.pending)[2]
                self.figures["likes_backlog_max"] = max(
                    self.figures["likes_backlog_max"], len(self.pending)
                )
            if not likes:
                time.sleep(0.05)
                continue
            values = [
                format_event(e["user"], e["item"], e.get("weight") and float(e["weight"]))
                for e in likes
            ]
            status, _ = self._call(conn, "POST", "/interactions", likes)
            with self.lock:
                target = self.sent if 200 <= status < 300 else self.unsure
                for v in values:
                    target[v] += 1
                self.figures["likes_posted" if 200 <= status < 300 else "likes_failed"] += len(
                    values
                )

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(180)
            self.figures["threads_not_done"] += t.is_alive()


# -- the truth -----------------------------------------------------------------------------------


def dump(kafka: KafkaSettings, topic: str) -> list[tuple[int, int, int, bytes, list]]:
    """Every record of ``topic``: (partition, offset, timestamp ms, value, headers)."""
    from confluent_kafka import TopicPartition

    from recommender.kafka import topic_partitions

    consumer = kafka.consumer(**{"auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition(topic, p, 0) for p in topic_partitions(consumer, topic)])
    out, idle = [], 0
    while idle < 10:
        batch = [m for m in consumer.consume(20_000, timeout=0.5) if m.error() is None]
        idle = 0 if batch else idle + 1
        out += [(m.partition(), m.offset(), m.timestamp()[1], m.value(), m.headers() or [])
                for m in batch]  # fmt: skip
    consumer.close()
    return out


def brute_force(exp_records, int_records) -> dict:
    """attribution.py's rules, by brute force: exposures counted once by id; each interaction
    (in event-time order) goes to the exposure it names if that one showed the item and is fresh
    (-5 s .. window), else to the newest fresh exposure *to that user* showing the item; a
    positive weight is a like, an exposure's first like a hit. Per model version and in all."""
    by_id, copies, by_user = {}, Counter(), defaultdict(list)
    for *_, value, _ in exp_records:
        e = decode_exposure(value)
        if e is not None:
            copies[e.id] += 1
            by_id.setdefault(e.id, e)
    for e in by_id.values():
        if e.user is not None:
            by_user[e.user].append(e)
    for shown in by_user.values():
        shown.sort(key=lambda e: e.timestamp_ms)
    parsed = parse_values([r[3] for r in int_records])
    users, items, weights = parsed.users(), parsed.items(), parsed.weights
    events = []
    for k, index in enumerate(parsed.accepted.tolist()):
        p, off, ts, _, headers = int_records[index]
        named = next((v.decode("ascii", "replace") for h, v in headers
                      if h == RECOMMENDATION_HEADER and isinstance(v, bytes)), None)  # fmt: skip
        events.append((ts, p, off, users[k], items[k], float(weights[k]), named))
    events.sort()

    def fresh(e, ts: int) -> bool:
        return -CLOCK_TOLERANCE_MS <= ts - e.timestamp_ms <= WINDOW_MS

    per = defaultdict(Counter)
    for e in by_id.values():
        per[str(e.model_version)]["exposures"] += 1
    liked: set[str] = set()
    for ts, _, _, user, item, weight, named in events:
        target, explicit = by_id.get(named) if named else None, True
        if target is None or item not in target.items or not fresh(target, ts):
            explicit = False
            showing = [e for e in by_user.get(user, ()) if item in e.items and fresh(e, ts)]
            target = showing[-1] if showing else None
        if target is None:
            continue
        c = per[str(target.model_version)]
        c["explicit"] += explicit
        if weight > 0:
            c["likes"] += 1
            if target.id not in liked:
                liked.add(target.id)
                c["hits"] += 1
        else:
            c["negatives"] += 1
    total = sum(per.values(), Counter())
    return {
        "total": total,
        "versions": per,
        "duplicated_ids": sum(c > 1 for c in copies.values()),
        "extra_records": sum(c - 1 for c in copies.values()),
        "interactions": len(events),
    }


# -- the soak ------------------------------------------------------------------------------------

KINDS = {"builder SIGKILL": 3, "builder SIGTERM": 2, "builder SIGKILL in replay": 3,
         "server SIGKILL": 3, "broker restart": 2, "broker freeze": 2,
         "store outage": 2}  # fmt: skip
FIGURES = ("exposures", "hits", "likes", "negatives", "explicit")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0, help="traffic and faults")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rate", type=float, default=500, help="events a second to Kafka")
    ap.add_argument("--requests", type=float, default=50, help="GET /recommend a second")
    ap.add_argument("--clients", type=int, default=4, help="request threads")
    ap.add_argument("--gap", default="15,45", help="seconds between faults: min,max")
    ap.add_argument(
        "--broker",
        choices=["memory", "s3"],
        default="memory",
        help="the broker's log: memory (restarts would lose it: the broker is frozen "
        "with SIGSTOP instead) or s3 (restarted; too slow on moto for the rates here)",
    )
    ap.add_argument(
        "--without",
        action="append",
        default=[],
        choices=sorted(KINDS),
        help="leave this kind of fault out (repeatable): e.g. to tell the broker's part apart",
    )
    ap.add_argument("--workdir", default=None)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    work = Path(a.workdir or tempfile.mkdtemp(prefix="soak-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"workdir {work}", flush=True)
    s3_port = free_port()
    moto_log = (work / "moto.log").open("ab")
    moto = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(s3_port)],
        stdout=moto_log,
        stderr=subprocess.STDOUT,
    )
    aws = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true"}  # fmt: skip
    os.environ.update(aws, AWS_ENDPOINT_URL=f"http://127.0.0.1:{s3_port}")  # direct: broker, reads
    proxy = Proxy(s3_port)
    proxy.start()
    proxy.up()
    via_proxy = {**aws, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{proxy.port}"}
    daemons: dict[str, Daemon] = {}
    broker = None
    t0 = time.monotonic()
    faults, odd = Counter(), Counter()
    try:
        import boto3

        for _ in range(100):
            try:
                s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
                s3.create_bucket(Bucket="broker")
                s3.create_bucket(Bucket="store")
                break
            except Exception:
                time.sleep(0.2)
        storage = "s3://broker/" if a.broker == "s3" else "memory"
        broker = EmbeddedBroker(log_file=work / "broker.log", storage=storage).start()
        kinds = {k: w for k, w in KINDS.items() if k != ("broker freeze" if a.broker == "s3"
                                                          else "broker restart")
                 and k not in a.without}  # fmt: skip
        kafka = KafkaSettings(broker.bootstrap_servers)
        inter, expo = "interactions", "recommendations"
        create_topic(kafka, inter, partitions=4)
        create_topic(kafka, expo, partitions=4)
        store_url, http_port = "s3://store/recs", free_port()
        base = f"http://127.0.0.1:{http_port}"
        common = ["--bootstrap-servers", kafka.bootstrap_servers, "--model-dir", store_url,
                  "--exposures-topic", expo, "--experiments-topic", "off",
                  "--attribution-window", "30m"]  # fmt: skip
        args = {
            "builder": ["build", inter, "0", "100000", "-b", "--tune", "off", "--factors", "8",
                        "--iterations", "4", "--retrain-interval", "60",
                        "--cache-dir", str(work / "builder-cache"), *common],
            "server": ["serve", "--port", str(http_port), "--topic", inter, "--enable-ingest",
                       "--cache-dir", str(work / "cache"), *common],
        }  # fmt: skip

        def start(name: str) -> Daemon:
            daemons[name] = Daemon(work, name, args[name], via_proxy)
            return daemons[name]

        seed = Producer(
            {"bootstrap.servers": kafka.bootstrap_servers, "linger.ms": 50, "log_level": 2}
        )
        seeded = TASTE.values(*TASTE.sample(20_000, np.random.default_rng(a.seed)))
        for value in seeded:
            seed.produce(inter, value, key=value.partition(b":")[0])
        assert seed.flush(60) == 0
        start("builder")
        start("server")
        for _ in range(600):  # a model served
            try:
                c = http.client.HTTPConnection("127.0.0.1", http_port, timeout=2)
                c.request("GET", "/ready")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        traffic = Traffic(kafka, inter, base, a, a.seed)
        traffic.sent.update(seeded)  # the training data, before the soak
        traffic.start()
        t_traffic = time.monotonic()
        gap = [float(x) for x in a.gap.split(",")]
        end = t_traffic + a.minutes * 60

        def watch(names=("builder", "server")) -> None:  # one that ended by itself: restarted
            for name in names:
                code = daemons[name].proc.poll()
                if code is not None:
                    odd[f"{name} exited by itself (code {code})"] += 1
                    daemons[name].stop()
                    start(name)

        while time.monotonic() < end:
            pause = time.monotonic() + rng.uniform(*gap)
            while time.monotonic() < min(pause, end):
                watch()
                time.sleep(0.5)
            if time.monotonic() >= end:
                break
            kind = rng.choices(list(kinds), weights=list(kinds.values()))[0]
            at = time.monotonic() - t_traffic
            detail = ""
            if kind.startswith("builder"):
                resumes = daemons["builder"].text().count("resuming from its checkpoint")
                if kind == "builder SIGKILL in replay":
                    daemons["builder"].stop(signal.SIGKILL)
                    start("builder")
                    deadline = time.monotonic() + 60
                    while time.monotonic() < deadline and daemons["builder"].text().count(
                            "resuming from its checkpoint") <= resumes:  # fmt: skip
                        time.sleep(0.05)
                    delay = rng.uniform(0.2, 4.0)
                    time.sleep(delay)
                    detail = f"{delay:.1f}s after its resume line"
                code = daemons["builder"].stop(signal.SIGKILL if "KILL" in kind else signal.SIGTERM)
                detail += f" exit {code}"
                start("builder")
            elif kind == "server SIGKILL":
                daemons["server"].stop(signal.SIGKILL)
                start("server")
            elif kind == "broker restart":
                broker.stop()
                time.sleep(rng.uniform(1, 5))
                broker.start()
            elif kind == "broker freeze":
                frozen = rng.uniform(5, 20)
                os.kill(broker.pid, signal.SIGSTOP)
                time.sleep(frozen)
                os.kill(broker.pid, signal.SIGCONT)
                detail = f"{frozen:.0f}s"
            else:
                outage = rng.uniform(10, 60)
                proxy.down()
                time.sleep(outage)
                proxy.up()
                detail = f"{outage:.0f}s"
            faults[kind] += 1
            print(f"{at:7.1f}s {kind} {detail}", flush=True)
        traffic.finish()
        t_done = time.monotonic()
        watch(("builder",))
        daemons["server"].stop()  # flushes its last exposures
        store = open_store(store_url)
        last, stable, deadline = None, 0, time.monotonic() + 600
        while stable < 5 and time.monotonic() < deadline:  # the monitor catches up
            time.sleep(3)
            watch(("builder",))
            doc = store.read_document(ONLINE_STATUS) or {}
            key = (json.dumps(doc.get("counts")), doc.get("held"))
            fresh = doc.get("updated_at", 0) > time.time() - 10
            stable = stable + 1 if key == last and fresh and doc.get("held") == 0 else 0
            last = key
        catch_up = time.monotonic() - t_done
        code = daemons["builder"].stop(signal.SIGTERM)
        doc = store.read_document(ONLINE_STATUS) or {}
        exp_records, int_records = dump(kafka, expo), dump(kafka, inter)
        for name, records in (("exposures", exp_records), ("interactions", int_records)):
            with open(work / f"{name}.jsonl", "w") as out:  # to look into a difference later
                for p, off, ts, value, headers in records:
                    named = [
                        v.decode("ascii", "replace") for h, v in headers if isinstance(v, bytes)
                    ]
                    out.write(
                        json.dumps([p, off, ts, value.decode("utf-8", "replace"), named]) + "\n"
                    )
        truth = brute_force(exp_records, int_records)
        report(
            a,
            doc,
            truth,
            traffic,
            int_records,
            faults,
            odd,
            daemons,
            work,
            code=code,
            catch_up=catch_up,
            minutes=(t_done - t_traffic) / 60,
            total=(time.monotonic() - t0) / 60,
        )
    finally:
        for d in daemons.values():
            d.stop(signal.SIGKILL, 10)
        if broker is not None:
            broker.stop()
        moto.terminate()
        moto.wait(10)
        moto_log.close()


def report(a, doc, truth, traffic, int_records, faults, odd, daemons, work, **extra) -> None:
    topic = Counter(r[3] for r in int_records)
    lost = sum(max(0, n - topic[v]) for v, n in traffic.sent.items())
    extra_values = topic - traffic.sent
    unexplained = sum(max(0, n - traffic.unsure[v]) for v, n in extra_values.items())
    day = ((doc.get("live") or {}).get("periods") or {}).get("24h") or {}
    rows = [("command", " ".join([Path(sys.executable).name, *sys.argv])),
            ("traffic minutes / whole run minutes",
             f"{extra['minutes']:.1f} / {extra['total']:.1f}"),
            ("events produced (acked) / rate reached",
             f"{traffic.figures['events_produced']} ({sum(traffic.sent.values())} acked incl. "
             f"likes) / {traffic.figures['events_produced'] / extra['minutes'] / 60:.0f}/s"),
            ("likes posted (2xx) / failed posts' events / most waiting",
             f"{traffic.figures['likes_posted']} / {traffic.figures['likes_failed']} / "
             f"{traffic.figures['likes_backlog_max']} answers"),
            ("interactions in topic", len(int_records)),
            ("acked events missing from the topic", lost),
            ("topic records beyond the acked (of which not from a failed POST)",
             f"{sum(extra_values.values())} ({unexplained})")]  # fmt: skip
    by_status = Counter()
    for (route, status), n in traffic.http.items():
        by_status[f"{route} {status}"] += n
    rows.append(("HTTP answers (0: no answer, connection refused/reset)",
                 dict(sorted(by_status.items()))))  # fmt: skip
    rows.append(("5xx other than 503", sum(n for (_, s), n in traffic.http.items()
                                          if s >= 500 and s != 503)))  # fmt: skip
    rows.append(("503", sum(n for (_, s), n in traffic.http.items() if s == 503)))
    rows.append(("faults", dict(faults)))
    rows.append(("processes that ended by themselves", dict(odd) or 0))
    rows.append(("last builder's exit code (SIGTERM)", extra["code"]))
    rows.append(("monitor counts / held", f"{doc.get('counts')} / {doc.get('held')}"))
    for f in FIGURES:
        rows.append((f"{f}: monitor vs brute force", f"{day.get(f)} vs {truth['total'][f]}"))
    rows.append(("model versions compared", len(truth["versions"])))
    for v, c in sorted(truth["versions"].items(), key=lambda kv: int(kv[0])):
        m = (day.get("versions") or {}).get(v, {})
        diff = {f: m.get(f, 0) - c[f] for f in FIGURES if m.get(f, 0) != c[f]}
        if diff:
            rows.append((f"version {v} differs (monitor - truth)", diff))
    rows.append(
        (
            "exposure records / duplicated ids / extra records",
            f"{sum(truth['versions'][v]['exposures'] for v in truth['versions'])} ids, "
            f"{truth['duplicated_ids']} duplicated, {truth['extra_records']} extra",
        )
    )
    for d in daemons.values():
        text = d.text()
        rows.append(
            (
                f"{d.name}.log: Traceback / ERROR / starts",
                f"{text.count('Traceback')} / {text.count('ERROR')} / "
                f"{text.count('resuming from its checkpoint')} resumes",
            )
        )
    text = daemons["builder"].text()
    rows.append(
        (
            "builder lock takeovers / refusals",
            f"{text.count('took over the lock')} / {text.count('another builder')}",
        )
    )
    rows.append(("last monitor's catch-up after the traffic", f"{extra['catch_up']:.0f} s"))
    rows.append(("workdir", str(work)))
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k:<{width}}  {v}" for k, v in rows))
    (work / "result.json").write_text(
        json.dumps(
            {"rows": rows, "monitor": day, "truth": truth, "doc_counts": doc.get("counts")},
            indent=1,
            default=str,
        )
    )


if __name__ == "__main__":
    main()
