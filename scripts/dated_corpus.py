#!/usr/bin/env python3
"""Build the dated-text corpus of the time-vector experiment (experiments/time/).

The text is the dated change history that ships with the installed Debian
packages, under /usr/share/doc/<package>/:

* ``changelog.Debian.gz``: Debian changelog entries, one document per entry
  (``pkg (version) dist; urgency=...`` header, bullet body, `` -- Name
  <email>  Date`` trailer). The year is the trailer's date.
* ``changelog.gz`` (upstream), when it is a GNU-style ChangeLog (entries
  headed ``YYYY-MM-DD  Name  <email>``) or a ``git log`` dump (``commit`` /
  ``Author:`` / ``Date:`` headers, message indented by four spaces): one
  document per dated entry or commit. Other upstream formats (NEWS-like
  release notes) carry no per-entry date and are skipped.

A document's text is the source package name on a line of its own followed
by the entry body, dedented. Names and e-mail addresses of authors are
removed: header and trailer lines are dropped, so are ``[ Name ]`` lines of
Debian entries, co-author lines of ChangeLog headers and ``Signed-off-by:``-
style trailers of commits, and every e-mail address left in a body is
deleted. Bodies are cut to at most MAX_DOC_BYTES at a line boundary.

Deduplication: Debian entries by (source package, version), because every
binary package of a source ships the same changelog; upstream files by
content, then every document by its normalized text (first occurrence in
sorted order wins), so the same entry never appears twice anywhere.

Only packages whose /usr/share/doc/<pkg>/copyright names a license this
script recognizes as free are used (see SOURCES.tsv).

Splits, per year (all choices below are by SHA-256 of fixed keys, so the same
installed files give the same bytes):

* Documents are grouped: a Debian entry by (source, version), an upstream
  entry by (source, date). Groups are ordered by the hash of their key.
* ``test.jsonl``: whole groups in that order, up to TEST_BYTES of text.
* ``train.jsonl``: documents of the other groups in that order, up to
  TRAIN_BYTES. Both take each kind of text (debian/gnu/git) in the same
  proportion (KIND_SHARES) in every year, and at most MAX_PACKAGE_SHARE of
  a split from one source package; security fixes are included.
* ``security_*.jsonl``: the security-related documents (SECURITY_RE) that
  are not in a test group of ``test.jsonl`` (they may be in ``train.jsonl``),
  ordered by their own hash: ``security_test`` up to SEC_TEST_BYTES,
  ``security_train`` the following ones up to SEC_TRAIN_BYTES.

Usage:  python3 scripts/dated_corpus.py [--doc-root /usr/share/doc]
        [--out experiments/time/data]

Besides the splits it writes SOURCES.tsv (packages used and their licenses),
MANIFEST.tsv (every input file with its SHA-256) and README.md.
"""

import argparse
import collections
import email.utils
import gzip
import hashlib
import json
import os
import re
import sys
import textwrap

# ---------------------------------------------------------------------------
# Parameters

YEARS = list(range(2013, 2023))
TRAIN_BYTES = 200_000
TEST_BYTES = 25_000
SEC_TRAIN_BYTES = 18_000
SEC_TEST_BYTES = 6_000
MAX_DOC_BYTES = 4_000
MIN_BODY_BYTES = 16
MAX_PACKAGE_SHARE = 0.15  # no source package above this share of a year's split
SEC_PACKAGE_SHARE = 0.35
# Every year's LM splits get the same mix of the three kinds of text, so that
# the years differ in time, not in genre (Debian entries are scarce before
# 2019 because debhelper trims installed changelogs).
KIND_SHARES = [("debian", 0.10), ("git", 0.25), ("gnu", 0.65)]

SECURITY_RE = re.compile(
    r"\bCVE-\d{4}-\d+|\bCAN-\d{4}-\d+|\bsecurity\b|\bDSA-\d+|\bDLA-\d+|"
    r"\bvulnerab|buffer (?:over|under)(?:flow|run)|heap(?:-based)? overflow|"
    r"stack(?:-based)? overflow|integer overflow|use[- ]after[- ]free|"
    r"out[- ]of[- ]bounds|double[- ]free|denial[- ]of[- ]service|"
    r"format string|null pointer dereference",
    re.IGNORECASE,
)

# OpenBSD-style developer handles ("ok djm@ markus@")
HANDLE_RE = re.compile(r"\b[a-z][a-z0-9_]*@(?![\w.])")
CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
EMAIL_RE = re.compile(r"<?\b[\w.+=-]+@[\w-]+(?:\.[\w-]+)+\b>?")
# "Signed-off-by:", "Reviewed-by:", "Co-authored-by:", "Reported-by:", ...
GIT_TRAILER_RE = re.compile(r"^\s*(?:[A-Za-z][A-Za-z-]*-[Bb]y|Change-Id|Cc|CC):")

DEB_HEADER_RE = re.compile(r"^(\S+) \(([^()\s]+)\) ([^;]*);")
DEB_TRAILER_RE = re.compile(r"^ -- (.*)$")
DEB_NAME_LINE_RE = re.compile(r"^\s*\[ [^\]]+ \]\s*$")
GNU_HEADER_RE = re.compile(r"^(\d{4})-(\d\d)-(\d\d)(?:\s|$)")
GNU_OLD_HEADER_RE = re.compile(
    r"^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
    r" +(\d{1,2}) [\d:]+ (?:[A-Z]{3,4} )?(\d{4})\b"
)
MONTHS = {m: i + 1 for i, m in enumerate(
    "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split())}
COMMIT_LINE_RE = re.compile(r"^\s*\+?\s*commit [0-9a-f]{7,40}\s*$")
GIT_COMMIT_RE = re.compile(r"^commit [0-9a-f]{7,40}\b")
GIT_HEADER_RE = re.compile(r"^(?:Author|AuthorDate|Commit|CommitDate|Merge|Date):")

# License names recognized in copyright files, first match wins for files
# that are not machine-readable (DEP-5). All of these are free licenses.
FREE_LICENSE_PATTERNS = [
    ("LGPL", re.compile(r"GNU (?:Library|Lesser) General Public License|\bLGPL", re.I)),
    ("GPL", re.compile(r"GNU General Public License|\bGPL\b|/usr/share/common-licenses/GPL", re.I)),
    ("Apache-2.0", re.compile(r"Apache License|/usr/share/common-licenses/Apache", re.I)),
    ("Artistic", re.compile(r"Artistic License|/usr/share/common-licenses/Artistic", re.I)),
    ("MPL", re.compile(r"Mozilla Public License|/usr/share/common-licenses/MPL", re.I)),
    ("BSD", re.compile(r"\bBSD\b|Redistribution and use in source and binary forms", re.I)),
    ("MIT", re.compile(r"\bMIT\b|Permission is hereby granted, free of charge", re.I)),
    ("Info-ZIP", re.compile(r"Info-ZIP license", re.I)),
    ("public-domain", re.compile(r"public domain", re.I)),
    ("permissive", re.compile(
        r"Permission to use, copy, modify,? (?:and/or |and )?distribute"
        r"|This file is free software|unlimited permission", re.I)),
]
NONFREE_DEP5 = re.compile(r"non-?free|proprietary|noncommercial|CC-BY-NC|CC-BY-ND", re.I)


# ---------------------------------------------------------------------------
# Helpers

def sha(s):
    return hashlib.sha256(s.encode("utf-8")).hexdigest()


def clean_body(lines):
    """Dedent, drop e-mail addresses and commit ids, trim blank lines, cap the size."""
    lines = [l for l in lines if not COMMIT_LINE_RE.match(l)]
    text = textwrap.dedent("\n".join(l.rstrip().expandtabs(8) for l in lines))
    text = EMAIL_RE.sub("", text)
    text = HANDLE_RE.sub("", text)
    out = [l.rstrip() for l in text.split("\n")]
    # collapse runs of blank lines, strip leading/trailing ones
    kept = []
    for l in out:
        if not l and (not kept or not kept[-1]):
            continue
        kept.append(l)
    while kept and not kept[-1]:
        kept.pop()
    text = "\n".join(kept)
    if len(text.encode("utf-8")) > MAX_DOC_BYTES:
        cut, n = [], 0
        for l in kept:
            n += len(l.encode("utf-8")) + 1
            if n > MAX_DOC_BYTES:
                break
            cut.append(l)
        text = "\n".join(cut) if cut else text.encode("utf-8")[:MAX_DOC_BYTES].decode("utf-8", "ignore")
    return text


def read_gz(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # older ChangeLogs
    return CONTROL_RE.sub("", text.replace("\r\n", "\n"))


def year_of_rfc2822(s):
    d = email.utils.parsedate_tz(s.strip())
    if d and d[0]:
        return d[0], "%04d-%02d-%02d" % (d[0], d[1], d[2])
    return None


# ---------------------------------------------------------------------------
# Parsers. Each yields dicts: kind, source, version (or None), date, year, body

def parse_debian(text):
    cur, body = None, []
    for line in text.split("\n"):
        m = DEB_HEADER_RE.match(line)
        if m:
            cur, body = (m.group(1), m.group(2)), []
            continue
        if cur is None:
            continue
        m = DEB_TRAILER_RE.match(line)
        if m:
            rest = m.group(1)
            # "Name <email>  Date": the date follows the last '>' (or two spaces)
            date = rest.rsplit(">", 1)[1] if ">" in rest else rest.split("  ", 1)[-1]
            yd = year_of_rfc2822(date)
            if yd:
                yield dict(kind="debian", source=cur[0], version=cur[1],
                           date=yd[1], year=yd[0],
                           body=[l for l in body if not DEB_NAME_LINE_RE.match(l)])
            cur, body = None, []
            continue
        body.append(line)


def detect_upstream(text):
    lines = text.split("\n")
    n_git = sum(1 for l in lines if GIT_COMMIT_RE.match(l))
    n_gnu = sum(1 for l in lines if GNU_HEADER_RE.match(l) or GNU_OLD_HEADER_RE.match(l))
    if n_git >= 5 and n_git >= n_gnu:
        return "git"
    if n_gnu >= 5:
        return "gnu"
    return None


def parse_gnu(text, source):
    cur, body, in_header = None, [], False

    def flush():
        if cur:
            return dict(kind="gnu", source=source, version=None, date=cur[1],
                        year=cur[0], body=body)
        return None

    for line in text.split("\n"):
        m = GNU_HEADER_RE.match(line)
        if m:
            y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
            date = (y, "%04d-%02d-%02d" % (y, mo, d)) if 1 <= mo <= 12 and 1 <= d <= 31 else None
        else:
            m = GNU_OLD_HEADER_RE.match(line)
            date = None
            if m:
                y = int(m.group(3))
                date = (y, "%04d-%02d-%02d" % (y, MONTHS[m.group(1)], int(m.group(2))))
        if m:
            doc = flush()
            if doc:
                yield doc
            cur, body, in_header = date, [], True
            continue
        if line.strip() and not line[0].isspace():
            # unindented non-header text (copyright notices, local variables)
            doc = flush()
            if doc:
                yield doc
            cur, body, in_header = None, [], False
            continue
        if cur is None:
            continue
        if in_header:
            if not line.strip():
                in_header = False
                continue
            if EMAIL_RE.search(line):  # co-author line right after the header
                continue
            in_header = False
        body.append(line)
    doc = flush()
    if doc:
        yield doc


def parse_git(text, source):
    cur, body = None, []

    def flush():
        if cur:
            return dict(kind="git", source=source, version=None, date=cur[1],
                        year=cur[0], body=body)
        return None

    started = False
    for line in text.split("\n"):
        if GIT_COMMIT_RE.match(line):
            doc = flush()
            if doc:
                yield doc
            cur, body, started = None, [], True
            continue
        if not started:
            continue
        if line.startswith("Date:"):
            s = line[5:].strip()
            yd = year_of_rfc2822(s)
            if not yd:
                m = re.match(r"(\d{4})-(\d\d)-(\d\d)", s)
                yd = (int(m.group(1)), m.group(0)) if m else None
            cur = yd
            continue
        if GIT_HEADER_RE.match(line):
            continue
        if line.startswith("    ") or not line.strip():
            if GIT_TRAILER_RE.match(line):
                continue
            body.append(line)
    doc = flush()
    if doc:
        yield doc


# ---------------------------------------------------------------------------
# Licenses

def parse_license(path):
    """Licenses named by a copyright file, or None if none is recognized."""
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    if re.match(r"(?i)format(?:-specification)?:\s*\S*(?:copyright-format|dep5|DEP-5)", text) or \
            re.search(r"(?im)^Format:\s*https?://\S*copyright-format", text):
        names = []
        for m in re.finditer(r"(?m)^License:[ \t]*(\S[^\n]*)$", text):
            val = m.group(1).strip()
            for part in re.split(r",?\s+(?:or|and)\s+|\s*[|,]\s*", val, flags=re.I):
                part = part.strip("() ")
                if part and part not in names:
                    names.append(part)
        if names:
            # Every package here comes from Debian main, whose policy admits
            # only DFSG-free licenses; refuse anything that says otherwise.
            if any(NONFREE_DEP5.search(n) for n in names):
                return ("nonfree", names)
            return ("free", names)
    # Not machine-readable: the license mentioned first.
    hits = []
    for i, (name, pat) in enumerate(FREE_LICENSE_PATTERNS):
        m = pat.search(text)
        if m:
            hits.append((m.start(), i, name))
    if hits:
        return ("free", [min(hits)[2]])
    return None


# ---------------------------------------------------------------------------
# Collection

def source_of_doc_dir(d):
    """Source package name: the first header of the Debian changelog, if any."""
    p = os.path.join(d, "changelog.Debian.gz")
    if os.path.isfile(p):
        for line in read_gz(p).split("\n"):
            m = DEB_HEADER_RE.match(line)
            if m:
                return m.group(1)
    return os.path.basename(d)


def collect(doc_root):
    docs = []
    licenses = {}     # source -> (status, names, binary dir used)
    excluded = {}     # source -> reason
    seen_files = set()
    for name in sorted(os.listdir(doc_root)):
        d = os.path.join(doc_root, name)
        if os.path.islink(d) or not os.path.isdir(d):
            continue
        files = []
        for fn in ("changelog.Debian.gz", "changelog.gz"):
            p = os.path.join(d, fn)
            if os.path.isfile(p):
                real = os.path.realpath(p)
                if real in seen_files:
                    continue
                seen_files.add(real)
                files.append((fn, p))
        if not files:
            continue
        source = source_of_doc_dir(d)
        if source not in licenses and source not in excluded:
            lic = parse_license(os.path.join(d, "copyright"))
            if lic is None:
                excluded[source] = "copyright file missing or no license recognized"
            elif lic[0] != "free":
                excluded[source] = "license %s: %s" % (lic[0], ", ".join(lic[1]))
            else:
                licenses[source] = (lic[1], name)
        for fn, p in files:
            text = read_gz(p)
            if fn == "changelog.Debian.gz":
                parsed = parse_debian(text)
            else:
                kind = detect_upstream(text)
                if kind == "gnu":
                    parsed = parse_gnu(text, source)
                elif kind == "git":
                    parsed = parse_git(text, source)
                else:
                    continue
            for doc in parsed:
                doc["binary"] = name
                docs.append(doc)
    return docs, licenses, excluded


def finalize(docs, licenses):
    out = []
    seen_versions = set()
    seen_text = set()
    for doc in docs:
        src = doc["source"]
        if src not in licenses:
            continue
        if doc["kind"] == "debian":
            key = (src, doc["version"])
            if key in seen_versions:
                continue
            seen_versions.add(key)
        body = clean_body(doc["body"])
        if len(body.encode("utf-8")) < MIN_BODY_BYTES:
            continue
        norm = " ".join(body.split())
        h = sha(norm)
        if h in seen_text:
            continue
        seen_text.add(h)
        group = "%s\x00%s\x00%s" % (doc["kind"], src,
                                    doc["version"] if doc["kind"] == "debian" else doc["date"])
        out.append(dict(
            year=doc["year"], kind=doc["kind"], source=src, version=doc["version"],
            date=doc["date"], text="%s\n%s" % (src, body), group=group,
            security=bool(SECURITY_RE.search(body)), id=h,
        ))
    return out


def nbytes(doc):
    return len(doc["text"].encode("utf-8"))


def take(pool, budget, key, share, per_pkg=None, whole_groups=False):
    """Docs of pool in the order of key until budget bytes.

    A source package gets at most share * budget bytes (counted in per_pkg,
    which strata of one split share). With whole_groups, a group is taken
    with all its documents or not at all."""
    if per_pkg is None:
        per_pkg = collections.Counter()
    units = collections.OrderedDict()
    for doc in sorted(pool, key=key):
        units.setdefault(doc["group"] if whole_groups else doc["id"], []).append(doc)
    chosen, total = [], 0
    for members in units.values():
        b = sum(nbytes(d) for d in members)
        if total + b > budget:
            continue
        src = members[0]["source"]
        if per_pkg[src] + b > share * budget_of(per_pkg, budget):
            continue
        chosen.extend(members)
        per_pkg[src] += b
        total += b
    return chosen


def budget_of(per_pkg, budget):
    return getattr(per_pkg, "split_budget", budget)


class PackageBytes(collections.Counter):
    """Bytes per source package within one split of one year."""

    def __init__(self, split_budget):
        super().__init__()
        self.split_budget = split_budget


def take_stratified(pool, budget, key, whole_groups):
    per_pkg = PackageBytes(budget)
    chosen = []
    for kind, frac in KIND_SHARES:
        chosen += take([d for d in pool if d["kind"] == kind], frac * budget, key,
                       MAX_PACKAGE_SHARE, per_pkg, whole_groups)
    return chosen


def split_year(docs, year):
    pool = [d for d in docs if d["year"] == year]
    by_group = lambda d: (sha("group\x00%d\x00%s" % (year, d["group"])), d["id"])
    by_doc = lambda d: (sha("security\x00%d\x00%s" % (year, d["id"])), d["id"])
    test = take_stratified(pool, TEST_BYTES, by_group, whole_groups=True)
    test_groups = {d["group"] for d in test}
    rest = [d for d in pool if d["group"] not in test_groups]
    train = take_stratified(rest, TRAIN_BYTES, by_group, whole_groups=False)
    sec = [d for d in rest if d["security"]]
    sec_test = take(sec, SEC_TEST_BYTES, by_doc, SEC_PACKAGE_SHARE)
    sec_test_ids = {d["id"] for d in sec_test}
    sec_train = take([d for d in sec if d["id"] not in sec_test_ids], SEC_TRAIN_BYTES,
                     by_doc, SEC_PACKAGE_SHARE)
    test_ids = {d["id"] for d in test}
    assert not test_ids & {d["id"] for d in train + sec_test + sec_train}
    assert not sec_test_ids & {d["id"] for d in sec_train}
    return dict(train=train, test=test, security_train=sec_train, security_test=sec_test)


# ---------------------------------------------------------------------------
# Output

def file_sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def write_jsonl(path, docs):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for d in sorted(docs, key=lambda d: d["id"]):
            rec = {"id": d["id"][:16], "year": d["year"], "kind": d["kind"],
                   "source": d["source"], "text": d["text"]}
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")


SPLITS = ["train", "test", "security_train", "security_test"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--doc-root", default="/usr/share/doc")
    ap.add_argument("--out", default="experiments/time/data")
    args = ap.parse_args()

    raw, licenses, excluded = collect(args.doc_root)
    docs = finalize(raw, licenses)
    os.makedirs(args.out, exist_ok=True)
    stats, used = [], collections.defaultdict(list)
    for year in YEARS:
        splits = split_year(docs, year)
        ydir = os.path.join(args.out, str(year))
        os.makedirs(ydir, exist_ok=True)
        row = [year]
        for name in SPLITS:
            write_jsonl(os.path.join(ydir, name + ".jsonl"), splits[name])
            row += [len(splits[name]), sum(nbytes(d) for d in splits[name])]
            for d in splits[name]:
                used[d["source"]].append(d)
        stats.append(row)

    # SOURCES.tsv: one line per source package whose text is used
    with open(os.path.join(args.out, "SOURCES.tsv"), "w", encoding="utf-8", newline="\n") as f:
        f.write("package\tdebian_versions\tupstream_entries\tdocuments\tyears\t"
                "license\tcopyright_file\n")
        for src in sorted(used):
            uniq = {d["id"]: d for d in used[src]}.values()
            versions = sorted({d["version"] for d in uniq if d["kind"] == "debian"})
            upstream = sum(1 for d in uniq if d["kind"] != "debian")
            years = sorted({d["year"] for d in uniq})
            names, binary = licenses[src]
            f.write("%s\t%d\t%d\t%d\t%s\t%s\t%s\n" % (
                src, len(versions), upstream, len(uniq), ",".join(map(str, years)),
                "; ".join(names), "/usr/share/doc/%s/copyright" % binary))

    # MANIFEST.tsv: every input file read, with its hash, for reproducibility
    with open(os.path.join(args.out, "MANIFEST.tsv"), "w", encoding="utf-8", newline="\n") as f:
        f.write("path\tsha256\n")
        for name in sorted(os.listdir(args.doc_root)):
            d = os.path.join(args.doc_root, name)
            if os.path.islink(d) or not os.path.isdir(d):
                continue
            for fn in ("changelog.Debian.gz", "changelog.gz", "copyright"):
                p = os.path.join(d, fn)
                if os.path.isfile(p) and not os.path.islink(p) and (
                        fn != "copyright" or any(
                            os.path.isfile(os.path.join(d, c))
                            for c in ("changelog.Debian.gz", "changelog.gz"))):
                    f.write("%s\t%s\n" % (p, file_sha256(p)))

    write_readme(args.out, stats, used, licenses, excluded)
    for row in stats:
        print("\t".join(map(str, row)))


def write_readme(out, stats, used, licenses, excluded):
    lic_count = collections.Counter()
    for src in used:
        for n in licenses[src][0]:
            lic_count[n] += 1
    total = 0
    for root, _, files in os.walk(out):
        for fn in files:
            if fn.endswith(".jsonl"):
                total += os.path.getsize(os.path.join(root, fn))
    lines = []
    w = lines.append
    w("# Dated text for the time-vector experiment")
    w("")
    w("Written by `scripts/dated_corpus.py`; do not edit by hand. Rebuild with")
    w("")
    w("```")
    w("python3 scripts/dated_corpus.py --doc-root /usr/share/doc --out experiments/time/data")
    w("```")
    w("")
    w("on a Debian 12 (bookworm) machine with the packages listed in `MANIFEST.tsv`")
    w("installed (that file lists every input file with its SHA-256; the output is")
    w("a function of those files only).")
    w("")
    w("## Source")
    w("")
    w("The dated change history shipped with installed Debian packages, under")
    w("`/usr/share/doc/<package>/`: the entries of `changelog.Debian.gz` (year of")
    w("the ` -- Name <email>  Date` trailer) and of upstream `changelog.gz` files")
    w("that are GNU-style ChangeLogs (`YYYY-MM-DD  Name  <email>` headers) or")
    w("`git log` dumps (`Date:` of each commit). One document is one entry: the")
    w("source package name on its first line, then the entry body, dedented, cut")
    w("to at most %d bytes at a line boundary. Author names and e-mail addresses" % MAX_DOC_BYTES)
    w("are removed (header and trailer lines, `[ Name ]` lines, `*-by:` trailers,")
    w("every e-mail address); names mentioned in prose (\"thanks to ...\") remain.")
    w("")
    w("Note that debhelper trims installed Debian changelogs to recent entries,")
    w("so Debian entries are scarce before 2019; the upstream ChangeLogs and git")
    w("logs cover the earlier years.")
    w("")
    w("## Deduplication")
    w("")
    w("Debian entries by (source package, version): every binary package built")
    w("from one source ships the same changelog. Upstream files by path after")
    w("resolving links; then every document by its whitespace-normalized text, so")
    w("no text appears twice anywhere in the corpus.")
    w("")
    w("## Splits")
    w("")
    w("Years %d-%d. Per year, by SHA-256 of fixed keys (no randomness):" % (YEARS[0], YEARS[-1]))
    w("")
    w("- documents are grouped, a Debian entry by (source, version), an upstream")
    w("  entry by (source, date); groups are ordered by the hash of (year, group);")
    w("- `test.jsonl`: whole groups in that order, up to %d bytes of text;" % TEST_BYTES)
    w("- `train.jsonl`: documents of the remaining groups in that order, up to")
    w("  %d bytes;" % TRAIN_BYTES)
    w("- both take the same mix of kinds in every year (%s of the bytes), and" % ", ".join(
        "%s %d%%" % (k, round(100 * f)) for k, f in KIND_SHARES))
    w("  no source package gets more than %d%% of a split's bytes, so that years" % round(100 * MAX_PACKAGE_SHARE))
    w("  differ in time rather than in genre or package;")
    w("- `security_train.jsonl` / `security_test.jsonl`: the documents that")
    w("  mention a security fix (CVE/CAN ids, DSA/DLA, \"security\", buffer")
    w("  overflow, use-after-free, ...; `SECURITY_RE` in the script) and are not in")
    w("  a test group of the LM split, ordered by hash: test up to %d bytes, train" % SEC_TEST_BYTES)
    w("  the following ones up to %d bytes, at most %d%% from one package. They may" % (SEC_TRAIN_BYTES, round(100 * SEC_PACKAGE_SHARE)))
    w("  also be in the LM `train.jsonl` (the LM sees all kinds of entries), but")
    w("  never in the LM `test.jsonl`, and the two security splits are disjoint.")
    w("")
    w("Each line of a `.jsonl` file: `{\"id\", \"year\", \"kind\", \"source\", \"text\"}`,")
    w("`kind` one of `debian`, `gnu`, `git`; lines sorted by `id`.")
    w("")
    w("| year | train docs | train bytes | test docs | test bytes | security_train docs | bytes | security_test docs | bytes |")
    w("|---|---|---|---|---|---|---|---|---|")
    for row in stats:
        w("| " + " | ".join(str(x) for x in row) + " |")
    w("")
    w("Total size of the `.jsonl` files: %d bytes. Bytes are UTF-8 bytes of the" % total)
    w("`text` fields. Tokens per year and split with the experiment's tokenizer")
    w("(`experiments/time/base/`) are in `TOKENS.tsv`, written by")
    w("`scripts/time_tokenizer.py` (run it after this script).")
    w("")
    w("The security filter is a keyword match, so it is noisy: besides CVE fixes")
    w("it takes memory-safety bug fixes found by fuzzing or tests. CVE ids are")
    w("much denser from 2019 on, where Debian entries (security uploads listing")
    w("CVEs) make up most of the matching text; before 2019 it is mostly upstream")
    w("ChangeLog and commit text.")
    w("")
    w("## Licenses")
    w("")
    w("Each changelog is part of its package and is distributed under that")
    w("package's license, as stated in `/usr/share/doc/<package>/copyright`. All")
    w("packages come from Debian main (DFSG-free). `SOURCES.tsv` lists, for each of")
    w("the %d source packages whose text is used, the licenses its copyright file" % len(used))
    w("names (every `License:` field of a machine-readable DEP-5 file, otherwise")
    w("the first license the file mentions). Packages whose copyright file is")
    w("missing or names no recognized license are left out (%d: %s)." % (
        len(excluded), ", ".join(sorted(excluded)) if excluded else "none"))
    w("")
    w("Most frequent license names among the used packages:")
    w("")
    for n, c in sorted(lic_count.items(), key=lambda kv: (-kv[1], kv[0]))[:15]:
        w("- %s: %d" % (n, c))
    w("")
    with open(os.path.join(out, "README.md"), "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
