#!/usr/bin/env python3
"""Where the intrusion bench's time goes, hop by hop, from a loopback capture of one run.

    tcpdump -i lo -s 256 -w /tmp/bench.pcap 'tcp and not port 1883' &
    cargo bench -p bench --bench intrusion -- --seconds 5 --latency-only
    kill %1; python3 scripts/siren-hops.py /tmp/bench.pcap

For each door OPEN of the panel's row and of the minimal controllers' rows, the capture's
timestamps (the kernel's, as each packet crosses the loopback) give four hops:

    door→ctl   the sensor's PUBLISH leaves the bench … the broker's copy reaches the controller
    in→out     … the controller's siren command leaves it (its wake-up, read, decision, write)
    out→watch  … the broker's copy reaches the bench's watcher
    total      the sensor's PUBLISH … the watcher's copy

and prints their medians, idle (before the background load starts) and loaded. Client names come
from the CONNECT packets, so tcpdump must start before the bench does. The topics are the bench's
(`crates/bench/src/mqtt.rs`, `Names`). Standard library only: a pcap reader and enough MQTT 3.1.1
to read CONNECT and PUBLISH.
"""

import collections
import struct
import sys

# Each row: the door topic the bench opens, and the siren topic the controller answers on.
ROWS = {
    "panel": ("home/security/door/bench-door", "home/control/alarm"),
    "minimal + siren": ("bench/heard/door", "bench-heard/control/alarm"),
    "minimal": ("bench/minimal-process/door", "bench/minimal-process/siren"),
    "blocking": ("bench/blocking/door", "bench/blocking/siren"),
}
WATCHER = "bench-watch"
BACKGROUND = "home/security/motion/"


def segments(path):
    """(time, source port, destination port, TCP payload) of every IPv4 TCP segment."""
    with open(path, "rb") as f:
        header = f.read(24)
        magic, = struct.unpack("<I", header[:4])
        nano = magic == 0xA1B23C4D
        link, = struct.unpack("<I", header[20:24])
        while len(record := f.read(16)) == 16:
            seconds, fraction, length, _ = struct.unpack("<IIII", record)
            data = f.read(length)
            data = data[14:] if link == 1 else data[16:] if link == 113 else data
            if len(data) < 20 or data[0] >> 4 != 4:
                continue
            ip_len = (data[0] & 15) * 4
            total, = struct.unpack(">H", data[2:4])
            tcp = data[ip_len:total]
            sport, dport = struct.unpack(">HH", tcp[:4])
            yield seconds + fraction / (1e9 if nano else 1e6), sport, dport, tcp[(tcp[12] >> 4) * 4:]


def packets(buffer):
    """(type, flags, body) of each MQTT packet in a segment (segments start on packet bounds)."""
    i = 0
    while i < len(buffer):
        first, size, multiplier, j = buffer[i], 0, 1, i + 1
        while j < len(buffer):
            byte = buffer[j]
            j += 1
            size += (byte & 127) * multiplier
            multiplier *= 128
            if not byte & 128:
                break
        yield first >> 4, first & 15, buffer[j:j + size]
        i = j + size


def publishes(path):
    """Every PUBLISH as (time, client, 'up' to the broker or 'down' from it, topic, payload)."""
    segs = list(segments(path))
    connects = collections.Counter(dport for _, _, dport, p in segs if p and p[0] >> 4 == 1)
    broker = connects.most_common(1)[0][0]
    names, out = {}, []
    for t, sport, dport, payload in segs:
        if broker not in (sport, dport):
            continue
        client, direction = (sport, "up") if dport == broker else (dport, "down")
        for kind, flags, body in packets(payload):
            if kind == 1 and len(body) > 12:
                at = 2 + struct.unpack(">H", body[:2])[0] + 4
                size, = struct.unpack(">H", body[at:at + 2])
                names[client] = body[at + 2:at + 2 + size].decode(errors="replace")
            elif kind == 3 and len(body) > 2:
                size, = struct.unpack(">H", body[:2])
                qos = (flags >> 1) & 3
                out.append((t, client, direction, body[2:2 + size].decode(errors="replace"),
                            body[2 + size + (2 if qos else 0):]))
    return [(t, names.get(c, str(c)), d, topic, p) for t, c, d, topic, p in out]


def hops(events, door, siren, start, end):
    found = collections.defaultdict(list)
    for i, (t, _, direction, topic, payload) in enumerate(events):
        if not start <= t <= end or topic != door or direction != "up" or b'"OPEN"' not in payload:
            continue
        seen = {}
        for tj, who, dj, tj_topic, pj in events[i + 1:i + 2000]:
            if tj - t > 0.05:
                break
            if tj_topic == door and dj == "down":
                seen.setdefault("in", tj)
            if tj_topic == siren and dj == "up" and b'"ON"' in pj:
                seen.setdefault("out", tj)
            if tj_topic == siren and dj == "down" and who == WATCHER and b'"ON"' in pj:
                seen["watch"] = tj
                break
        if len(seen) == 3:
            found["door→ctl"].append(seen["in"] - t)
            found["in→out"].append(seen["out"] - seen["in"])
            found["out→watch"].append(seen["watch"] - seen["out"])
            found["total"].append(seen["watch"] - t)
    return found


def main(path):
    events = publishes(path)
    background = [t for t, _, _, topic, _ in events if topic.startswith(BACKGROUND)]
    first, last = events[0][0], events[-1][0]
    phases = {"idle": (first, background[0] if background else last)}
    if background:
        phases["loaded"] = (background[0], background[-1])
    for phase, (start, end) in phases.items():
        print(f"{phase} (medians, µs)")
        for row, (door, siren) in ROWS.items():
            found = hops(events, door, siren, start, end)
            if not found:
                print(f"   {row:16} not in this capture")
                continue
            medians = "  ".join(f"{k} {sorted(v)[len(v) // 2] * 1e6:5.0f}" for k, v in found.items())
            print(f"   {row:16} n={len(found['total']):4}  {medians}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
