#!/usr/bin/env python3
"""Which tables and indexes each commit of a bank's ledger rewrites.

Copies a ledger's database and write-ahead log (take them while the bank is under load, e.g.
during `bank bench`), then reads the log's frames: every commit writes each page it changed once,
so frames per commit, split by the table or index owning each page, show where the writer's
bytes (and its fsync) go.

    python3 scripts/wal-pages.py interbank-demo/10000001/ledger.db
"""

import collections
import shutil
import sqlite3
import statistics
import struct
import sys
import tempfile
from pathlib import Path

FRAME_HEADER = 24
WAL_HEADER = 32


def commits(wal: bytes) -> list[list[int]]:
    """The page numbers of each commit still valid in the log (the frames after its last reset)."""
    if len(wal) < WAL_HEADER:
        return []
    page_size = struct.unpack(">I", wal[8:12])[0]
    salt = wal[16:24]
    found, pages, offset = [], [], WAL_HEADER
    while offset + FRAME_HEADER + page_size <= len(wal):
        page, commit_size = struct.unpack(">II", wal[offset : offset + 8])
        if wal[offset + 8 : offset + 16] != salt:
            break
        pages.append(page)
        if commit_size:
            found.append(pages)
            pages = []
        offset += FRAME_HEADER + page_size
    return found


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    db = Path(sys.argv[1])
    with tempfile.TemporaryDirectory() as tmp:
        # The log first: the pages it names exist in the database copied after it.
        shutil.copy(f"{db}-wal", Path(tmp) / "ledger.db-wal")
        shutil.copy(db, Path(tmp) / "ledger.db")
        wal = (Path(tmp) / "ledger.db-wal").read_bytes()
        conn = sqlite3.connect(Path(tmp) / "ledger.db")
        owner = dict(conn.execute("SELECT pageno, name FROM dbstat"))
        conn.close()
    found = commits(wal)
    if not found:
        print("no commits in the log (it was just restarted, or the bank is idle); try again")
        return 1
    sizes = [len(c) for c in found]
    print(f"{len(found)} commits, pages per commit: median {statistics.median(sizes)}, "
          f"mean {statistics.mean(sizes):.1f}")
    tally = collections.Counter(owner.get(page, "(new page)") for c in found for page in c)
    for name, count in tally.most_common():
        print(f"  {name:40s} {count / len(found):6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
