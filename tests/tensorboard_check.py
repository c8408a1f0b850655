#!/usr/bin/env python3
"""Reads a run directory's TensorBoard event files independently of the trainer and checks them
against its metrics.jsonl (tests/CMakeLists.txt: cli_tensorboard).

    tensorboard_check.py RUN_DIR [--files N]

Every record of every events.out.tfevents.* file (in name order) is checked: both masked CRC32Cs
(computed here, bit by bit), then the Event is parsed with Debian's python3-protobuf from
Event/Summary messages this script defines itself. Each file starts with file_version
"brain.Event:2"; the other events, in order, must be exactly metrics.jsonl's records that have
numbers, with the same steps, tags and values (as float32). Exits 1 naming the first difference.
"""
import json
import math
import os
import struct
import sys

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory


def fail(msg):
    print("tensorboard_check: FAIL: " + msg)
    sys.exit(1)


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def masked(data):
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def event_class():
    """tensorflow/core/util/event.proto's Event and summary.proto's Summary, the fields used."""
    f = descriptor_pb2.FileDescriptorProto(name="tb_check.proto", package="tbcheck", syntax="proto3")
    F = descriptor_pb2.FieldDescriptorProto

    def msg(name, fields):
        m = f.message_type.add(name=name)
        for fname, number, ftype, label, tname in fields:
            fd = m.field.add(name=fname, number=number, type=ftype, label=label)
            if tname:
                fd.type_name = tname

    opt, rep = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    msg("Value", [("tag", 1, F.TYPE_STRING, opt, None), ("simple_value", 2, F.TYPE_FLOAT, opt, None)])
    msg("Summary", [("value", 1, F.TYPE_MESSAGE, rep, ".tbcheck.Value")])
    msg("Event", [("wall_time", 1, F.TYPE_DOUBLE, opt, None), ("step", 2, F.TYPE_INT64, opt, None),
                  ("file_version", 3, F.TYPE_STRING, opt, None),
                  ("summary", 5, F.TYPE_MESSAGE, opt, ".tbcheck.Summary")])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    d = pool.FindMessageTypeByName("tbcheck.Event")
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(d)
    return message_factory.MessageFactory(pool).GetPrototype(d)


def records(path):
    data = open(path, "rb").read()
    pos, n = 0, 0
    while pos < len(data):
        if len(data) - pos < 12:
            fail("%s: %d bytes left over after record %d" % (path, len(data) - pos, n))
        length_bytes = data[pos:pos + 8]
        (length,) = struct.unpack("<Q", length_bytes)
        (len_crc,) = struct.unpack("<I", data[pos + 8:pos + 12])
        if len_crc != masked(length_bytes):
            fail("%s: record %d: length CRC %08x, computed %08x" % (path, n, len_crc, masked(length_bytes)))
        body = data[pos + 12:pos + 12 + length]
        if len(body) != length or pos + 16 + length > len(data):
            fail("%s: record %d is cut short" % (path, n))
        (data_crc,) = struct.unpack("<I", data[pos + 12 + length:pos + 16 + length])
        if data_crc != masked(body):
            fail("%s: record %d: data CRC %08x, computed %08x" % (path, n, data_crc, masked(body)))
        yield body
        pos += 16 + length
        n += 1


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def expected_scalars(rec):
    """docs/training.md's naming rule, written again here."""
    out = {}
    t = rec.get("type")
    if not isinstance(t, str) or not isinstance(rec.get("step"), int):
        return out

    def is_num(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    def walk(v, tag):
        if is_num(v):
            out[tag] = f32(v)
        elif isinstance(v, dict):
            for k, x in v.items():
                walk(x, tag + "/" + k)
        elif isinstance(v, list):
            for i, x in enumerate(v):
                if isinstance(x, dict):
                    walk(x, "%s/%d" % (tag, i))

    for k, v in rec.items():
        if k in ("type", "step"):
            continue
        if is_num(v):
            out[t + "/" + (k[len(t) + 1:] if k.startswith(t + "_") else k)] = f32(v)
        else:
            walk(v, t + "." + k)
    return out


def main():
    if len(sys.argv) < 2:
        fail("usage: tensorboard_check.py RUN_DIR [--files N]")
    run = sys.argv[1]
    want_files = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[2] == "--files" else None
    expected = []
    for line in open(os.path.join(run, "metrics.jsonl")):
        rec = json.loads(line)
        s = expected_scalars(rec)
        if s:
            expected.append((rec["step"], s))
    tb = os.path.join(run, "tensorboard")
    files = sorted(f for f in os.listdir(tb) if "tfevents" in f)
    if want_files is not None and len(files) != want_files:
        fail("%d event files, expected %d: %s" % (len(files), want_files, files))
    Event = event_class()
    got = []
    for name in files:
        for i, body in enumerate(records(os.path.join(tb, name))):
            e = Event()
            e.ParseFromString(body)
            if i == 0:
                if e.file_version != "brain.Event:2" or e.HasField("summary"):
                    fail("%s: the first event is not file_version brain.Event:2: %s" % (name, e))
                continue
            if not e.HasField("summary") or e.file_version or not (e.wall_time > 1e9):
                fail("%s: event %d is not a summary with a wall time: %s" % (name, i, e))
            got.append((e.step, {v.tag: v.simple_value for v in e.summary.value}))
    if len(got) != len(expected):
        fail("%d summary events, metrics.jsonl has %d records with numbers" % (len(got), len(expected)))
    scalars = 0
    for i, ((gs, gv), (ws, wv)) in enumerate(zip(got, expected)):
        if gs != ws:
            fail("event %d: step %d, metrics.jsonl record: step %d" % (i, gs, ws))
        if gv.keys() != wv.keys():
            fail("event %d (step %d): tags differ: only in the event file %s, only in metrics.jsonl %s"
                 % (i, gs, sorted(gv.keys() - wv.keys()), sorted(wv.keys() - gv.keys())))
        for tag, v in wv.items():
            if not (gv[tag] == v or (math.isnan(v) and math.isnan(gv[tag]))):
                fail("event %d (step %d): %s = %r, metrics.jsonl %r" % (i, gs, tag, gv[tag], v))
        scalars += len(wv)
    tags = sorted({t for _, s in expected for t in s})
    print("tensorboard_check: %d event file(s), %d summary events, %d scalars equal to metrics.jsonl; "
          "steps %s; tags include %s" % (len(files), len(got), scalars, [s for s, _ in got],
                                        [t for t in tags if t in ("train/loss", "train/lr", "train/grad_norm",
                                                                  "train/tokens_per_s", "train/mfu", "val/loss",
                                                                  "train.moe/0/ent_load", "train.moe/1/ent_load")]
                                        + [t for t in tags if t.startswith("train.aux_by_name/")]))


main()
