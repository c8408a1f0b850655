#!/usr/bin/env python3
"""Checks that each file is a valid PNG holding a drawing, with a reader independent of matplotlib.
  png_check.py FILE...
Valid: the PNG signature, chunks whose CRC32s match, IHDR first and IEND last, 8-bit RGB or RGBA,
not interlaced, image data that inflates to exactly height rows of the stated width, every row's
filter undone. A drawing: at least 20000 bytes, at least 300 x 200 pixels, at least 16 distinct
colours and at least 1% of the pixels not white. Prints one line per file; exit 1 on the first
failure."""
import struct
import sys
import zlib


def fail(path, why):
    print(f"FAIL: {path}: {why}")
    sys.exit(1)


def chunks(path, data):
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        fail(path, "no PNG signature")
    pos = 8
    while pos < len(data):
        if pos + 12 > len(data):
            fail(path, f"chunk cut short at byte {pos}")
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if pos + 12 + length > len(data):
            fail(path, f"chunk {kind!r} at byte {pos} cut short")
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        if len(body) != length or zlib.crc32(kind + body) != crc:
            fail(path, f"chunk {kind!r} at byte {pos}: bad length or CRC")
        yield kind, body
        pos += 12 + length


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def pixels(path, width, height, bpp, raw):
    """The unfiltered rows (PNG spec, section 9)."""
    stride = width * bpp
    if len(raw) != height * (stride + 1):
        fail(path, f"image data inflates to {len(raw)} bytes, expected {height * (stride + 1)}")
    prev = bytearray(stride)
    rows = []
    for y in range(height):
        ftype = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 255
            elif ftype == 2:
                line[i] = (line[i] + b) & 255
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif ftype == 4:
                line[i] = (line[i] + paeth(a, b, c)) & 255
            elif ftype != 0:
                fail(path, f"row {y}: unknown filter type {ftype}")
        rows.append(bytes(line))
        prev = line
    return rows


def check(path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 20000:
        fail(path, f"{len(data)} bytes: too small to hold a plot")
    parts = list(chunks(path, data))
    if parts[0][0] != b"IHDR" or parts[-1][0] != b"IEND":
        fail(path, "IHDR is not first or IEND not last")
    width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", parts[0][1])
    if depth != 8 or ctype not in (2, 6) or interlace != 0:
        fail(path, f"depth {depth}, colour type {ctype}, interlace {interlace}: not 8-bit RGB(A)")
    if width < 300 or height < 200:
        fail(path, f"{width} x {height} pixels: too small")
    bpp = 4 if ctype == 6 else 3
    rows = pixels(path, width, height, bpp, zlib.decompress(b"".join(b for k, b in parts if k == b"IDAT")))
    colours, inked = set(), 0
    for row in rows:
        for x in range(0, len(row), bpp * 2):  # every other pixel is plenty
            px = row[x:x + 3]
            colours.add(px)
            inked += px != b"\xff\xff\xff"
    sampled = height * ((width + 1) // 2)
    if len(colours) < 16 or inked < sampled // 100:
        fail(path, f"{len(colours)} colours, {inked} of {sampled} sampled pixels not white: no drawing")
    print(f"ok: {path}: {width} x {height}, {len(data)} bytes, {len(colours)} colours")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        fail("png_check.py", "no file given")
    for p in sys.argv[1:]:
        check(p)
