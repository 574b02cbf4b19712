#!/usr/bin/env python3
"""Extract fuzz seeds from the captures in ../../shared/testvectors into corpus/seeds/<target>/.

Each Ethernet frame is cut at the layer each target parses:
  ethernet  the whole frame
  ipv4      the IPv4 datagram (from byte 14)
  igmp      the IGMP message of a non-DVMRP IGMP datagram (type != 0x13)
  dvmrp     the IGMP message of a DVMRP datagram (type 0x13)
  udp       the UDP datagram
  overlay   no capture has overlay traffic: each captured multicast IPv4/UDP datagram is wrapped
            in an overlay header (v1, Data, hop count 16, group = its destination), once without
            and once with the A bit and a 16-byte tag, as the data plane would send it.
Seeds are deduplicated by content and named by their SHA-1. At most MAX_PER_TARGET are kept per
target, picked round-robin over message kinds (IP protocol, IGMP type and code, UDP port, A bit)
so that rare messages (prune, graft, leave) are kept even where probes and reports dominate.

Rerun from the repository root:  python3 fuzz/extract_seeds.py [path/to/testvectors]
Standard library only; the output is deterministic.
"""

import hashlib
import pathlib
import struct
import sys

MAX_PER_TARGET = 48
HERE = pathlib.Path(__file__).resolve().parent
DEFAULT_VECTORS = HERE.parent.parent / "shared" / "testvectors"


def pcap_frames(path):
    """Yield the captured bytes of each frame of a classic pcap file with Ethernet link type."""
    data = path.read_bytes()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        raise ValueError(f"{path}: not a classic pcap file")
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    if linktype != 1:
        raise ValueError(f"{path}: link type {linktype}, expected 1 (Ethernet)")
    off = 24
    while off + 16 <= len(data):
        incl_len = struct.unpack(endian + "I", data[off + 8 : off + 12])[0]
        yield data[off + 16 : off + 16 + incl_len]
        off += 16 + incl_len


def overlay_seeds(datagram, auth):
    group = datagram[16:20]
    flags = 0x80 if auth else 0x00
    header = bytes([0x10, flags, 16, 1]) + group + bytes([10, 0, 12, 1]) + struct.pack(">I", 1)
    # The tag is not a real HMAC (wire does not check it); it only gives the fuzzer the layout.
    tag = hashlib.sha256(header + datagram).digest()[:16] if auth else b""
    return header + tag + datagram


def split(frame):
    """Return (target, kind, bytes) triples for one frame."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00":
        return [("ethernet", frame[12:14], frame)]
    ip = frame[14:]
    ihl = (ip[0] & 0x0F) * 4
    total = struct.unpack(">H", ip[2:4])[0]
    payload = ip[ihl:total]
    proto = ip[9]
    kind = bytes([proto]) + payload[:2]
    out = [("ethernet", kind, frame), ("ipv4", kind, ip)]
    if proto == 2 and payload:
        out.append(("dvmrp" if payload[0] == 0x13 else "igmp", kind, payload))
    elif proto == 17 and len(payload) >= 8:
        out.append(("udp", payload[2:4], payload))
        if 224 <= ip[16] <= 239:
            for auth in (False, True):
                out.append(("overlay", bytes([auth]), overlay_seeds(ip[:total], auth)))
    return out


def pick(by_kind):
    """Round-robin over kinds (in first-seen order) until MAX_PER_TARGET seeds are chosen."""
    chosen = {}
    queues = [list(blobs.items()) for blobs in by_kind.values()]
    while len(chosen) < MAX_PER_TARGET and any(queues):
        for queue in queues:
            if queue and len(chosen) < MAX_PER_TARGET:
                name, blob = queue.pop(0)
                chosen[name] = blob
    return chosen


def main():
    vectors = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_VECTORS
    found = {}
    for pcap in sorted(vectors.rglob("*.pcap")):
        for frame in pcap_frames(pcap):
            for target, kind, blob in split(frame):
                found.setdefault(target, {}).setdefault(kind, {})
                found[target][kind][hashlib.sha1(blob).hexdigest()] = blob
    seeds = {target: pick(by_kind) for target, by_kind in found.items()}
    for target in ["ethernet", "ipv4", "udp", "igmp", "dvmrp", "overlay"]:
        outdir = HERE / "corpus" / "seeds" / target
        outdir.mkdir(parents=True, exist_ok=True)
        for old in outdir.iterdir():
            old.unlink()
        for name, blob in seeds.get(target, {}).items():
            (outdir / name).write_bytes(blob)
        print(f"{target}: {len(seeds.get(target, {}))} seeds")


if __name__ == "__main__":
    main()
