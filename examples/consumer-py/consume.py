"""Consuming walnats change events from Python, with a durable JetStream pull consumer.

    pip install nats-py
    NATS_URL=nats://127.0.0.1:4222 python consume.py shop public.orders insert,update

prints one line per change event of table public.orders in database shop and keeps its
position in NATS under a durable consumer: stop it, write to the table, start it again, and
it continues where it stopped. Events delivered again (an ack lost in a crash) are skipped
by their Nats-Msg-Id. See docs/consumers.md for subjects and the envelope.

numeric values arrive as JSON strings and int8 as JSON numbers with every digit; Python's
json keeps both exact. This example is not run by walnats's CI (no nats-py there); the
TypeScript example in examples/consumer-ts is, against a real daemon.
"""

import asyncio
import collections
import json
import os
import re
import signal
import sys

import nats
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

KEEP = re.compile(rb"[A-Za-z0-9_-]")
ALNUM = re.compile(rb"[A-Za-z0-9]")


def escape_token(name: str) -> str:
    """walnats's escaping of a name into one subject token: [A-Za-z0-9_-] kept, other bytes %XX."""
    if name == "":
        return "%"
    return "".join(chr(b) if KEEP.fullmatch(bytes([b])) else "%%%02X" % b for b in name.encode())


def default_stream_name(prefix: str, db: str) -> str:
    """<prefix>_<db>, non-alphanumeric bytes as -XX (names over 200 characters are cut and hashed)."""
    part = lambda s: "".join(chr(b) if ALNUM.fullmatch(bytes([b])) else "-%02X" % b for b in s.encode())
    return f"{part(prefix)}_{part(db)}"


class SeenIds:
    """The last `limit` handled Nats-Msg-Ids. A sink that must survive restarts stores the
    last handled id (or stream sequence) with its data, in the same transaction."""

    def __init__(self, limit: int = 100_000):
        self.ids: "collections.OrderedDict[str, None]" = collections.OrderedDict()
        self.limit = limit

    def __contains__(self, msg_id: str) -> bool:
        return msg_id in self.ids

    def add(self, msg_id: str) -> None:
        self.ids[msg_id] = None
        if len(self.ids) > self.limit:
            self.ids.popitem(last=False)


async def main(argv: list[str]) -> None:
    if len(argv) < 2 or "." not in argv[1]:
        print("usage: consume.py <database> <schema.table> [insert,update,delete,truncate,read]", file=sys.stderr)
        sys.exit(2)
    db, qualified = argv[0], argv[1]
    schema, table = qualified.split(".", 1)
    ops = argv[2].split(",") if len(argv) > 2 else ["insert", "update", "delete", "truncate", "read"]
    prefix = os.environ.get("WALNATS_PREFIX", "walnats")
    stream = os.environ.get("STREAM", default_stream_name(prefix, db))
    durable = os.environ.get("DURABLE", re.sub(r"[^A-Za-z0-9_-]", "_", f"example-{db}-{qualified}"))
    # One op: filter on it exactly. Several: `*` as the op token, and skip the others here.
    op_token = ops[0] if len(ops) == 1 else "*"
    filter_subject = ".".join([prefix, escape_token(db), escape_token(schema), escape_token(table), op_token])

    nc = await nats.connect(servers=os.environ.get("NATS_URL", "nats://127.0.0.1:4222").split(","))
    js = nc.jetstream()
    try:
        await js.consumer_info(stream, durable)
    except NotFoundError:
        await js.add_consumer(
            stream,
            ConsumerConfig(
                durable_name=durable,
                filter_subject=filter_subject,
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=30,  # seconds
                max_ack_pending=1000,
            ),
        )
    sub = await js.pull_subscribe_bind(durable, stream)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(s, stop.set)

    seen = SeenIds()
    while not stop.is_set():
        try:
            msgs = await sub.fetch(100, timeout=2)
        except NatsTimeout:
            continue
        for m in msgs:
            op = m.subject.rsplit(".", 1)[1]
            msg_id = (m.headers or {}).get("Nats-Msg-Id", "")
            if op not in ops or (msg_id and msg_id in seen):
                await m.ack()  # another op of this table, or a redelivery of a handled event
                continue
            event = json.loads(m.data)
            print(json.dumps({"seq": m.metadata.sequence.stream, "id": msg_id, "op": event["op"],
                              "before": event["before"], "after": event["after"]}), flush=True)
            if msg_id:
                seen.add(msg_id)
            await m.ack_sync()  # waits for the server to confirm the ack
    await nc.drain()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
