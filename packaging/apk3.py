#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Write and read apk-tools v3 packages (the ADB format of OpenWrt 25.12 and later).

    apk3.py build -o OUT.apk -F ROOT -I name:uplinkd -I version:0.1.0-r1 ...
                  [-s post-install:FILE ...] [--epoch SECONDS] [--compression deflate|none]
    apk3.py dump PKG.apk [--extract DIR] [--scripts DIR]

`build` packs the tree under ROOT (modes from the file system, every entry owned by
root, times fixed to --epoch) with the given metadata and scripts. `dump` parses a
package completely, checks it (see below) and prints one line per field, script,
directory and file; --extract writes the files under DIR, --scripts each script as
DIR/<type>. Exit status 1 with a one-line message on any malformed input.

The format, as apk-tools reads it:

- The file is "ADB." followed by the uncompressed stream, "ADBd" followed by a raw
  deflate stream, or "ADBc", two bytes (algorithm, level) and a stream compressed
  with that algorithm (1 deflate, 2 zstd; zstd is not read here).
- The stream starts with the magic "ADB." and the schema id ("pckg" for a package),
  then blocks. A block starts with a little-endian u32: the top two bits are its type
  (0 ADB, 1 SIG, 2 DATA, 3 extended header: then the low bits are the type, a u32
  is reserved and a u64 holds the size), the low 30 bits the size including that
  header word. Blocks are padded with zeros to 8 bytes. One ADB block comes first,
  then any SIG blocks, then DATA blocks.
- The ADB block holds a tree of values. A value is a little-endian u32 whose top
  four bits are its type and low 28 bits either the value (null/true/false, small
  integers) or the offset of the value's data from the start of the block: u32 or
  u64 integers (4-byte aligned), blobs with a u8, u16 or u32 length in front (aligned
  to the size of the length), and objects or arrays, which are u32 slots whose
  first slot is the number of slots (4-byte aligned). The block starts with
  compat version 0, version, two reserved bytes and the root value.
- The root of a package is an object: info (name, version, unique id, description,
  arch, license, origin, maintainer, url, installed size, depends, ...), paths (the
  directories, sorted by name, each with its mode/owner and its files, sorted by
  name, with mode/owner, size, time and sha256), scripts and triggers.
- Each regular file that is not empty has a DATA block: its directory and file
  index (u32 each, counted from 1) then its bytes, in the order of the paths.
- The unique id (info "hashes") is the first 20 bytes of the sha256 of the ADB
  block, computed while those 20 bytes are still zero.

The layout written here follows the order in which apk-tools' own writer (`apk
mkpkg`, 3.0.6) lays values out and shares identical data, so for the same tree both
produce the same bytes (apk mkpkg with SOURCE_DATE_EPOCH set to --epoch).
"""

import argparse
import hashlib
import os
import re
import stat
import struct
import sys
import zlib

# Value types (top four bits of a value).
T_SPECIAL = 0x0
T_INT = 0x1
T_INT32 = 0x2
T_INT64 = 0x3
T_BLOB8 = 0x8
T_BLOB16 = 0x9
T_BLOB32 = 0xA
T_ARRAY = 0xD
T_OBJECT = 0xE
NULL = 0

FORMAT_MAGIC = b"ADB."
SCHEMA_PACKAGE = b"pckg"
BLOCK_ADB, BLOCK_SIG, BLOCK_DATA, BLOCK_EXT = 0, 1, 2, 3
BLOCK_NAMES = {BLOCK_ADB: "ADB", BLOCK_SIG: "SIG", BLOCK_DATA: "DATA"}
UNIQUE_ID_LEN = 20

# Slot numbers of the package schema.
PKG_INFO, PKG_PATHS, PKG_SCRIPTS, PKG_TRIGGERS, PKG_REPLACES_PRIORITY = 1, 2, 3, 4, 5
INFO_FIELDS = [  # (slot, name, kind)
    (1, "name", "string"),
    (2, "version", "string"),
    (3, "hashes", "hex"),
    (4, "description", "string"),
    (5, "arch", "string"),
    (6, "license", "string"),
    (7, "origin", "string"),
    (8, "maintainer", "string"),
    (9, "url", "string"),
    (10, "repo-commit", "hex"),
    (11, "build-time", "int"),
    (12, "installed-size", "int"),
    (13, "file-size", "int"),
    (14, "provider-priority", "int"),
    (15, "depends", "deps"),
    (16, "provides", "deps"),
    (17, "replaces", "deps"),
    (18, "install-if", "deps"),
    (19, "recommends", "deps"),
    (20, "layer", "int"),
    (21, "tags", "strings"),
]
INFO_SLOT = {name: slot for slot, name, _ in INFO_FIELDS}
INFO_KIND = {name: kind for _, name, kind in INFO_FIELDS}
SCRIPTS = ["trigger", "pre-install", "post-install", "pre-deinstall", "post-deinstall",
           "pre-upgrade", "post-upgrade"]  # slots 1..7
ACL_MODE, ACL_USER, ACL_GROUP, ACL_XATTRS = 1, 2, 3, 4
FI_NAME, FI_ACL, FI_SIZE, FI_MTIME, FI_HASH, FI_TARGET = 1, 2, 3, 4, 5, 6
DI_NAME, DI_ACL, DI_FILES = 1, 2, 3
DEP_NAME, DEP_VERSION, DEP_MATCH = 1, 2, 3

# Dependency operators (apk's version match bits: equal 1, less 2, greater 4,
# fuzzy 8, conflict 16). A plain "name" matches any version.
DEP_OPS = {"=": 1, "<": 2, "<=": 3, ">": 4, ">=": 5, "~": 9, "=~": 9, "><": 6}
DEP_ANY = 7
DEP_CONFLICT = 16
DEP_OP_NAMES = {v: k for k, v in DEP_OPS.items() if k not in ("=~",)}

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9+_.-]*\Z")
VERSION_RE = re.compile(
    r"[0-9]+(\.[0-9]+)*[a-z]?(_(alpha|beta|pre|rc|cvs|svn|git|hg|p)[0-9]*)*(~[0-9a-f]+)?(-r[0-9]+)?\Z")
DEP_RE = re.compile(r"(!?)([^<>=~!\s]+)(?:(<=|>=|=~|><|<|>|=|~)(\S+))?\Z")


class Bad(Exception):
    """Malformed input: reported as one line, exit status 1."""


def le32(v):
    return struct.pack("<I", v)


def val(vtype, value):
    if value >= 1 << 28:
        raise Bad("ADB block larger than 256 MiB")
    return (vtype << 28) | value


def vtype(v):
    return v >> 28


def vvalue(v):
    return v & 0x0FFFFFFF


# --------------------------------------------------------------------------- write


class Writer:
    """Builds an ADB block. Identical data written twice is stored once (with the
    alignment it needs), as apk-tools does."""

    def __init__(self):
        self.buf = bytearray(8)  # compat version 0, version 0, reserved, root
        self.seen = {}

    def _raw(self, data, align):
        self.buf += bytes(-len(self.buf) % align)
        off = len(self.buf)
        self.buf += data
        return off

    def _data(self, data, align, share=True):
        if share:
            off = self.seen.get(data)
            if off is not None and off % align == 0:
                return off
        off = self._raw(data, align)
        if share:
            self.seen[data] = off
        return off

    def blob(self, b, share=True):
        if not b:
            return NULL
        n = len(b)
        if n <= 0xFF:
            return val(T_BLOB8, self._data(struct.pack("<B", n) + b, 1, share))
        if n <= 0xFFFF:
            return val(T_BLOB16, self._data(struct.pack("<H", n) + b, 2, share))
        if n <= 0xFFFFFFFF:
            return val(T_BLOB32, self._data(struct.pack("<I", n) + b, 4, share))
        raise Bad("blob too large")

    def int(self, n):
        if n < 0:
            raise Bad(f"negative integer {n}")
        if n < 1 << 28:
            return val(T_INT, n)
        if n < 1 << 32:
            return val(T_INT32, self._data(le32(n), 4))
        if n < 1 << 64:
            return val(T_INT64, self._data(struct.pack("<Q", n), 4))
        raise Bad(f"integer too large: {n}")

    def obj(self, slots, otype=T_OBJECT):
        """slots: values of slots 1..n (NULL for unset). Trailing NULLs are dropped;
        an object with no set slot is NULL itself."""
        slots = list(slots)
        while slots and slots[-1] == NULL:
            slots.pop()
        if not slots:
            return NULL
        data = le32(len(slots) + 1) + b"".join(le32(s) for s in slots)
        return val(otype, self._data(data, 4))

    def set_root(self, v):
        self.buf[4:8] = le32(v)


def parse_dep(text):
    m = DEP_RE.match(text)
    if not m or not NAME_RE.match(m.group(2)):
        raise Bad(f"bad dependency {text!r}")
    conflict, name, op, ver = m.groups()
    if ver is not None and not VERSION_RE.match(ver):
        raise Bad(f"bad version in dependency {text!r}")
    match = DEP_OPS[op] if op else DEP_ANY
    if conflict:
        match |= DEP_CONFLICT
    return name, ver, match


def write_deps(w, text):
    """A dependency list ("a b>=1 !c", comma or space separated), sorted by name."""
    deps = []
    for word in re.split(r"[\s,]+", text.strip()):
        if not word:
            continue
        name, ver, match = parse_dep(word)
        slots = [w.blob(name.encode())]
        if match != DEP_ANY:
            slots.append(w.blob(ver.encode()) if ver else NULL)
            if match != DEP_OPS["="]:
                slots.append(w.int(match))
        deps.append(((name.encode(), (ver or "").encode(), match), w.obj(slots)))
    deps.sort(key=lambda d: d[0])
    unique = []
    for _, v in deps:
        if not unique or unique[-1] != v:
            unique.append(v)
    # apk-tools stores lists built from text with the object type; readers accept both.
    return w.obj(unique)


def scan(root):
    """The tree under root: [(dir, [(name, lstat)])], directories sorted by path,
    entries by name (byte order), the root itself first as ""."""
    root_st = os.lstat(root)
    if not stat.S_ISDIR(root_st.st_mode):
        raise Bad(f"{root}: not a directory")
    dirs = [("", root_st)]
    todo = [""]
    while todo:
        rel = todo.pop()
        for name in os.listdir(os.path.join(root, rel) if rel else root):
            path = f"{rel}/{name}" if rel else name
            st = os.lstat(os.path.join(root, path))
            if stat.S_ISDIR(st.st_mode):
                dirs.append((path, st))
                todo.append(path)
    dirs.sort(key=lambda d: os.fsencode(d[0]))
    tree = []
    for rel, st in dirs:
        base = os.path.join(root, rel) if rel else root
        entries = []
        for name in sorted(os.listdir(base), key=os.fsencode):
            est = os.lstat(os.path.join(base, name))
            if not stat.S_ISDIR(est.st_mode):
                entries.append((name, est))
        tree.append((rel, st, entries))
    return tree


def build(args):
    info = {}
    for item in args.info:
        key, sep, value = item.partition(":")
        if not sep:
            raise Bad(f"--info {item!r}: want KEY:VALUE")
        if key not in INFO_SLOT or key in ("hashes", "installed-size", "file-size"):
            raise Bad(f"--info: unknown or computed field {key!r}")
        info[key] = value
    for need in ("name", "version", "arch"):
        if not info.get(need):
            raise Bad(f"--info {need}:... is required")
    if not NAME_RE.match(info["name"]):
        raise Bad(f"bad package name {info['name']!r}")
    if not VERSION_RE.match(info["version"]):
        raise Bad(f"bad apk version {info['version']!r} (want e.g. 1.2.3-r1)")
    scripts = {}
    for item in args.script:
        kind, sep, path = item.partition(":")
        if not sep or kind not in SCRIPTS:
            raise Bad(f"--script {item!r}: want TYPE:FILE, TYPE one of {', '.join(SCRIPTS)}")
        with open(path, "rb") as f:
            scripts[kind] = f.read()
    epoch = args.epoch

    w = Writer()
    # Metadata first, in slot order.
    info_slots = [NULL] * len(INFO_FIELDS)
    for slot, name, kind in INFO_FIELDS:
        if name not in info:
            continue
        value = info[name]
        if kind == "string":
            v = w.blob(value.encode())
        elif kind == "int":
            if not value.isdigit():
                raise Bad(f"--info {name}: not a number: {value!r}")
            v = w.int(int(value))
        elif kind == "deps":
            v = write_deps(w, value)
        elif kind == "hex":
            try:
                v = w.blob(bytes.fromhex(value))
            except ValueError:
                raise Bad(f"--info {name}: not hex: {value!r}") from None
        else:  # strings (tags)
            v = w.obj([w.blob(t.encode()) for t in value.split()])
        info_slots[slot - 1] = v

    # Then the files, directory by directory, each directory after its files.
    tree = scan(args.files)
    installed = 0
    data = []  # (path index, file index, path on disk, size), in package order
    paths = []
    for pi, (rel, dst, entries) in enumerate(tree, 1):
        files = []
        for fi, (name, st) in enumerate(entries, 1):
            full = os.path.join(args.files, rel, name)
            target = None
            digest = None
            if stat.S_ISREG(st.st_mode):
                if st.st_nlink > 1:
                    raise Bad(f"{full}: hard links are not supported")
                h = hashlib.sha256()
                with open(full, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 16), b""):
                        h.update(chunk)
                digest = h.digest()
                installed += st.st_size
                size = st.st_size
                if size:
                    data.append((pi, fi, full, size))
            elif stat.S_ISLNK(st.st_mode):
                target = struct.pack("<H", stat.S_IFLNK) + os.fsencode(os.readlink(full))
                size = st.st_size
            else:
                raise Bad(f"{full}: only regular files, symlinks and directories are packed")
            # Written in this order: name, hash, target, time, size, then the
            # owner object and the file object.
            name_v = w.blob(os.fsencode(name))
            hash_v = w.blob(digest) if digest is not None else NULL
            target_v = w.blob(target) if target is not None else NULL
            mtime_v = w.int(epoch if epoch is not None else int(st.st_mtime))
            size_v = w.int(size)
            acl_v = w.obj([w.int(stat.S_IMODE(st.st_mode)), w.blob(b"root"), w.blob(b"root")])
            files.append(w.obj([name_v, acl_v, size_v, mtime_v, hash_v, target_v]))
        name_v = w.blob(os.fsencode(rel))
        acl_v = w.obj([w.int(stat.S_IMODE(dst.st_mode)), w.blob(b"root"), w.blob(b"root")])
        paths.append(w.obj([name_v, acl_v, w.obj(files)]))
    installed = max(installed, 1)
    info_slots[INFO_SLOT["installed-size"] - 1] = w.int(installed)
    # The unique id: written unshared, filled in once the block is complete.
    uid = w.blob(bytes(UNIQUE_ID_LEN), share=False)
    info_slots[INFO_SLOT["hashes"] - 1] = uid
    info_v = w.obj(info_slots)
    paths_v = w.obj(paths)
    scripts_v = NULL
    if scripts:
        scripts_v = w.obj([w.blob(scripts.get(k, b"")) for k in SCRIPTS])
    w.set_root(w.obj([info_v, paths_v, scripts_v]))
    uid_off = vvalue(uid) + 1
    w.buf[uid_off:uid_off + UNIQUE_ID_LEN] = hashlib.sha256(w.buf).digest()[:UNIQUE_ID_LEN]

    out = bytearray(FORMAT_MAGIC + SCHEMA_PACKAGE)
    out += block(BLOCK_ADB, bytes(w.buf))
    for pi, fi, full, size in data:
        with open(full, "rb") as f:
            content = f.read()
        if len(content) != size:
            raise Bad(f"{full}: changed while packing")
        out += block(BLOCK_DATA, struct.pack("<II", pi, fi) + content)
    if args.compression == "deflate":
        c = zlib.compressobj(9, zlib.DEFLATED, -15, 8)
        out = b"ADBd" + c.compress(bytes(out)) + c.flush()
    tmp = args.output + ".tmp"
    with open(tmp, "wb") as f:
        f.write(out)
    os.replace(tmp, args.output)


def block(btype, payload):
    size = 4 + len(payload)
    if size > 0x3FFFFFFF:
        raise Bad("block too large")
    return le32((btype << 30) | size) + payload + bytes(-size % 8)


# ---------------------------------------------------------------------------- read


class Reader:
    """Bounds- and alignment-checked access to the values of an ADB block."""

    def __init__(self, buf):
        self.buf = buf

    def _at(self, off, size, align, what):
        if off % align:
            raise Bad(f"{what}: offset {off:#x} not aligned to {align}")
        if off + size > len(self.buf):
            raise Bad(f"{what}: offset {off:#x}+{size} past the end of the ADB block")
        return self.buf[off:off + size]

    def int(self, v, what):
        t, x = vtype(v), vvalue(v)
        if t == T_INT:
            return x
        if t == T_INT32:
            return struct.unpack("<I", self._at(x, 4, 4, what))[0]
        if t == T_INT64:
            return struct.unpack("<Q", self._at(x, 8, 4, what))[0]
        raise Bad(f"{what}: want an integer, found type {t:#x}")

    def blob(self, v, what):
        """bytes, or None for null."""
        if v == NULL:
            return None
        t, x = vtype(v), vvalue(v)
        for bt, fmt, n in ((T_BLOB8, "<B", 1), (T_BLOB16, "<H", 2), (T_BLOB32, "<I", 4)):
            if t == bt:
                length = struct.unpack(fmt, self._at(x, n, n, what))[0]
                return self._at(x + n, length, 1, what)
        raise Bad(f"{what}: want a blob, found type {t:#x}")

    def string(self, v, what):
        b = self.blob(v, what)
        if b is None:
            return None
        try:
            return b.decode()
        except UnicodeDecodeError:
            raise Bad(f"{what}: not UTF-8") from None

    def slots(self, v, what, max_slots=None):
        """The slots 1..n of an object or array (an empty list for null)."""
        if v == NULL:
            return []
        t, x = vtype(v), vvalue(v)
        if t not in (T_OBJECT, T_ARRAY):
            raise Bad(f"{what}: want an object or array, found type {t:#x}")
        n = struct.unpack("<I", self._at(x, 4, 4, what))[0]
        if n < 1:
            raise Bad(f"{what}: object with no slot count")
        raw = self._at(x, 4 * n, 4, what)
        slots = list(struct.unpack(f"<{n}I", raw))[1:]
        if max_slots is not None and len(slots) > max_slots:
            # A newer apk may add fields; they are shown, not interpreted.
            extra = ", ".join(f"#{i}" for i in range(max_slots + 1, len(slots) + 1) if slots[i - 1])
            if extra:
                print(f"note: {what}: unknown slots {extra}", file=sys.stderr)
        return slots

    def slot(self, slots, i):
        return slots[i - 1] if i <= len(slots) else NULL


def decompress(raw):
    if raw[:4] == b"ADB.":
        return "none", raw
    if raw[:4] == b"ADBd":
        alg, body = 1, raw[4:]
    elif raw[:4] == b"ADBc":
        if len(raw) < 6:
            raise Bad("truncated compression header")
        alg, body = raw[4], raw[6:]
    else:
        raise Bad("not an apk v3 package (no ADB magic)")
    if alg == 0:
        return "none", body
    if alg != 1:
        raise Bad(f"compression algorithm {alg} ({'zstd' if alg == 2 else 'unknown'}) is not supported")
    d = zlib.decompressobj(-15)
    try:
        out = d.decompress(body) + d.flush()
    except zlib.error as e:
        raise Bad(f"deflate stream: {e}") from None
    if not d.eof:
        raise Bad("deflate stream is truncated")
    if d.unused_data:
        raise Bad(f"{len(d.unused_data)} bytes after the deflate stream")
    return "deflate", out


def blocks(stream):
    """[(type, payload)] of the block sequence after the file header."""
    out = []
    pos = 8
    while pos < len(stream):
        if len(stream) - pos < 4:
            raise Bad(f"truncated block header at {pos:#x}")
        word = struct.unpack_from("<I", stream, pos)[0]
        btype, hdr = word >> 30, 4
        raw = word & 0x3FFFFFFF
        if btype == BLOCK_EXT:
            if len(stream) - pos < 16:
                raise Bad(f"truncated extended block header at {pos:#x}")
            btype = word & 0x3FFFFFFF
            raw = struct.unpack_from("<Q", stream, pos + 8)[0]
            hdr = 16
        if raw < hdr:
            raise Bad(f"block at {pos:#x}: size {raw} smaller than its header")
        padded = raw + (-raw % 8)
        if pos + padded > len(stream):
            raise Bad(f"block at {pos:#x}: size {raw} runs past the end of the file")
        if any(stream[pos + raw:pos + padded]):
            raise Bad(f"block at {pos:#x}: padding is not zero")
        if btype not in BLOCK_NAMES:
            raise Bad(f"block at {pos:#x}: unknown type {btype}")
        out.append((btype, stream[pos + hdr:pos + raw]))
        pos += padded
    return out


def check_name(name, what):
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise Bad(f"{what}: bad file name {name!r}")


def check_dir(name, what):
    if name.startswith("/") or name.endswith("/") or "\0" in name:
        raise Bad(f"{what}: bad directory name {name!r}")
    if name and any(part in ("", ".", "..") for part in name.split("/")):
        raise Bad(f"{what}: bad directory name {name!r}")


def acl(r, v, what):
    s = r.slots(v, what, 4)
    mode = r.int(r.slot(s, ACL_MODE), what + " mode")
    if mode > 0o7777:
        raise Bad(f"{what}: mode {mode:o} has file type bits")
    user = r.string(r.slot(s, ACL_USER), what + " user") or "-"
    group = r.string(r.slot(s, ACL_GROUP), what + " group") or "-"
    xattrs = len(r.slots(r.slot(s, ACL_XATTRS), what + " xattrs"))
    return mode, user, group, xattrs


def deps_text(r, v, what):
    out = []
    for i, d in enumerate(r.slots(v, what), 1):
        s = r.slots(d, f"{what}[{i}]", 3)
        name = r.string(r.slot(s, DEP_NAME), f"{what}[{i}] name")
        if not name:
            raise Bad(f"{what}[{i}]: no name")
        ver = r.string(r.slot(s, DEP_VERSION), f"{what}[{i}] version")
        match = r.int(r.slot(s, DEP_MATCH), f"{what}[{i}] match") if r.slot(s, DEP_MATCH) else None
        if match is None:
            match = DEP_ANY if ver is None else DEP_OPS["="]
        text = ("!" if match & DEP_CONFLICT else "") + name
        if ver is not None:
            text += DEP_OP_NAMES.get(match & ~DEP_CONFLICT, "?") + ver
        out.append(text)
    return " ".join(out)


def dump(args):
    try:
        with open(args.package, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise Bad(e.strerror) from None
    comp, stream = decompress(raw)
    if len(stream) < 8 or stream[:4] != FORMAT_MAGIC:
        raise Bad("no ADB. magic after decompression")
    if stream[4:8] != SCHEMA_PACKAGE:
        raise Bad(f"schema {stream[4:8]!r} is not a package (pckg)")
    blks = blocks(stream)
    if not blks or blks[0][0] != BLOCK_ADB:
        raise Bad("the first block is not an ADB block")
    order = [b[0] for b in blks]
    for a, b in zip(order, order[1:]):
        if b == BLOCK_ADB or (a == BLOCK_DATA and b != BLOCK_DATA):
            raise Bad("blocks out of order (want ADB, SIG..., DATA...)")
    adb = blks[0][1]
    if len(adb) < 16:
        raise Bad("ADB block too short")
    if adb[0] != 0:
        raise Bad(f"ADB compat version {adb[0]} (want 0)")
    r = Reader(adb)
    root = struct.unpack_from("<I", adb, 4)[0]
    pkg = r.slots(root, "package", 5)
    info = r.slots(r.slot(pkg, PKG_INFO), "info", len(INFO_FIELDS))
    nsig = order.count(BLOCK_SIG)
    ndata = order.count(BLOCK_DATA)
    print(f"format: adb pckg, compression {comp}, 1 ADB block, {nsig} SIG blocks, {ndata} DATA blocks")

    fields = {}
    for slot, name, kind in INFO_FIELDS:
        v = r.slot(info, slot)
        if v == NULL:
            continue
        what = f"info {name}"
        if kind == "string":
            fields[name] = r.string(v, what)
        elif kind == "hex":
            fields[name] = r.blob(v, what).hex()
        elif kind == "int":
            fields[name] = str(r.int(v, what))
        elif kind == "deps":
            fields[name] = deps_text(r, v, what)
        else:
            fields[name] = " ".join(r.string(t, what) or "" for t in r.slots(v, what))
    if not fields.get("name") or not NAME_RE.match(fields["name"]):
        raise Bad(f"bad or missing package name {fields.get('name')!r}")
    if not fields.get("version") or not VERSION_RE.match(fields["version"]):
        raise Bad(f"bad or missing version {fields.get('version')!r}")
    # The unique id, as apk mkpkg computes it.
    uid_v = r.slot(info, INFO_SLOT["hashes"])
    if uid_v != NULL:
        uid = r.blob(uid_v, "info hashes")
        if len(uid) == UNIQUE_ID_LEN:
            off = vvalue(uid_v) + 1
            zeroed = adb[:off] + bytes(UNIQUE_ID_LEN) + adb[off + UNIQUE_ID_LEN:]
            ok = hashlib.sha256(zeroed).digest()[:UNIQUE_ID_LEN] == uid
            fields["hashes"] += " (matches)" if ok else " (does not match the block)"
    for _, name, _ in INFO_FIELDS:
        if name in fields:
            value = fields[name]
            if "\n" in value:
                raise Bad(f"info {name}: contains a newline")
            print(f"{name}: {value}")

    scripts = r.slots(r.slot(pkg, PKG_SCRIPTS), "scripts", len(SCRIPTS))
    script_data = {}
    for i, kind in enumerate(SCRIPTS, 1):
        b = r.blob(r.slot(scripts, i), f"script {kind}")
        if b is not None:
            script_data[kind] = b
            print(f"script: {kind} {len(b)} bytes")
    for i, t in enumerate(r.slots(r.slot(pkg, PKG_TRIGGERS), "triggers"), 1):
        print(f"trigger: {r.string(t, f'trigger {i}')}")

    # Directories and files; which files carry data, in order.
    want = []  # (path index, file index, path, size, sha256 or None)
    entries = []  # (kind, path, mode, target or None)
    prev_dir = None
    for pi, dv in enumerate(r.slots(r.slot(pkg, PKG_PATHS), "paths"), 1):
        ds = r.slots(dv, f"path {pi}", 3)
        dname = r.string(r.slot(ds, DI_NAME), f"path {pi} name") or ""
        check_dir(dname, f"path {pi}")
        if prev_dir is not None and dname.encode() <= prev_dir.encode():
            raise Bad(f"path {dname!r}: directories not sorted or repeated")
        prev_dir = dname
        mode, user, group, xattrs = acl(r, r.slot(ds, DI_ACL), f"dir /{dname} acl")
        print(f"dir: /{dname} {mode:04o} {user} {group}" + (f" xattrs={xattrs}" if xattrs else ""))
        entries.append(("dir", dname, mode, None))
        prev_file = None
        for fi, fv in enumerate(r.slots(r.slot(ds, DI_FILES), f"/{dname} files"), 1):
            fs = r.slots(fv, f"/{dname} file {fi}", 6)
            fname = r.string(r.slot(fs, FI_NAME), f"/{dname} file {fi} name")
            check_name(fname, f"/{dname} file {fi}")
            if prev_file is not None and fname.encode() <= prev_file.encode():
                raise Bad(f"/{dname}: files not sorted or repeated at {fname!r}")
            prev_file = fname
            path = f"{dname}/{fname}" if dname else fname
            what = f"/{path}"
            mode, user, group, xattrs = acl(r, r.slot(fs, FI_ACL), what + " acl")
            size = r.int(r.slot(fs, FI_SIZE), what + " size")
            mtime = r.int(r.slot(fs, FI_MTIME), what + " mtime")
            digest = r.blob(r.slot(fs, FI_HASH), what + " hash")
            target = r.blob(r.slot(fs, FI_TARGET), what + " target")
            extra = f" xattrs={xattrs}" if xattrs else ""
            if target is not None:
                if len(target) < 2:
                    raise Bad(f"{what}: short target")
                ftype = struct.unpack_from("<H", target)[0]
                if ftype == stat.S_IFLNK:
                    dest = target[2:].decode(errors="replace")
                    print(f"link: {what} {mode:04o} {user} {group} -> {dest}{extra}")
                    entries.append(("link", path, mode, dest))
                elif ftype == stat.S_IFREG:
                    dest = target[2:].decode(errors="replace")
                    print(f"hardlink: {what} {mode:04o} {user} {group} -> /{dest}{extra}")
                    entries.append(("hardlink", path, mode, dest))
                elif ftype in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO):
                    print(f"device: {what} {mode:04o} {user} {group}{extra}")
                else:
                    raise Bad(f"{what}: unknown target type {ftype:#o}")
                continue
            if digest is None:
                raise Bad(f"{what}: regular file without a hash")
            if len(digest) != 32:
                raise Bad(f"{what}: hash of {len(digest)} bytes (want sha256, 32)")
            print(f"file: {what} {mode:04o} {user} {group} {size} {mtime} {digest.hex()}{extra}")
            entries.append(("file", path, mode, None))
            if size:
                want.append((pi, fi, path, size, digest))
            else:
                if digest != hashlib.sha256(b"").digest():
                    raise Bad(f"{what}: empty file with the hash of non-empty data")
                want.append((pi, fi, path, 0, None))

    datas = [b[1] for b in blks if b[0] == BLOCK_DATA]
    contents = {}
    i = 0
    for pi, fi, path, size, digest in want:
        if size == 0:
            contents[path] = b""
            continue
        if i >= len(datas):
            raise Bad(f"/{path}: no DATA block")
        d = datas[i]
        i += 1
        if len(d) < 8:
            raise Bad(f"DATA block {i}: too short")
        bp, bf = struct.unpack_from("<II", d)
        if (bp, bf) != (pi, fi):
            raise Bad(f"DATA block {i}: for path {bp} file {bf}, want {pi} {fi} (/{path})")
        if len(d) - 8 != size:
            raise Bad(f"/{path}: DATA block has {len(d) - 8} bytes, the file list says {size}")
        if hashlib.sha256(d[8:]).digest() != digest:
            raise Bad(f"/{path}: sha256 of its DATA block does not match the file list")
        contents[path] = d[8:]
    if i != len(datas):
        raise Bad(f"{len(datas) - i} DATA blocks for no file")
    print(f"data: {len(datas)} blocks, sizes and sha256 match the file list")

    if args.extract:
        extract(args.extract, entries, contents)
    if args.scripts:
        os.makedirs(args.scripts, exist_ok=True)
        for kind, b in script_data.items():
            p = os.path.join(args.scripts, kind)
            with open(p, "wb") as f:
                f.write(b)
            os.chmod(p, 0o755)


def extract(dest, entries, contents):
    for kind, path, mode, target in entries:
        p = os.path.join(dest, path) if path else dest
        if kind == "dir":
            os.makedirs(p, exist_ok=True)
            os.chmod(p, mode)
        elif kind == "file":
            with open(p, "wb") as f:
                f.write(contents[path])
            os.chmod(p, mode)
        elif kind == "link":
            os.symlink(target, p)


def main():
    ap = argparse.ArgumentParser(prog="apk3.py", description="apk-tools v3 (ADB) packages")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="write a package from a directory tree")
    b.add_argument("-o", "--output", required=True)
    b.add_argument("-F", "--files", required=True, help="root of the files to pack")
    b.add_argument("-I", "--info", action="append", default=[], metavar="KEY:VALUE")
    b.add_argument("-s", "--script", action="append", default=[], metavar="TYPE:FILE")
    b.add_argument("--epoch", type=int, help="time of every file (default: its mtime)")
    b.add_argument("--compression", choices=("deflate", "none"), default="deflate")
    d = sub.add_parser("dump", help="check a package and print its contents")
    d.add_argument("package")
    d.add_argument("--extract", metavar="DIR", help="write the files under DIR")
    d.add_argument("--scripts", metavar="DIR", help="write each script as DIR/<type>")
    args = ap.parse_args()
    try:
        (build if args.cmd == "build" else dump)(args)
    except Bad as e:
        what = args.output if args.cmd == "build" else args.package
        print(f"apk3.py: {what}: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"apk3.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
