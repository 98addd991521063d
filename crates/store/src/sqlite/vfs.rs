//! `coalesce`: SQLite's default VFS with one difference, for the writer's connection: the frames
//! a commit appends to the WAL are gathered in memory and written with one `pwrite` (up to
//! 128 KiB) when SQLite next syncs, reads, sizes, controls or closes the log, instead of two
//! `pwrite`s per frame (its header, then its page). Every other file, and every other call on the
//! log, goes straight to the default VFS.
//!
//! Durability is unchanged because the writer runs with `synchronous=FULL`: SQLite syncs the log
//! at every commit before it publishes the commit to readers (the WAL index), and the sync writes
//! what was gathered first. So `COMMIT` returns, and readers see a commit, only once its frames
//! are written and flushed; a crash before that loses only frames of an unacknowledged commit,
//! as it would without this VFS.
//!
//! This is the workspace's only unsafe code (the lint is `deny`, allowed in this module alone):
//! SQLite's VFS is a C interface.

#![allow(unsafe_code)]

use rusqlite::ffi;
use std::ffi::{c_int, c_void};
use std::ptr;
use std::sync::OnceLock;

/// The name the writer's connection opens the database with.
pub const NAME: &str = "coalesce";

/// The most bytes gathered into one write: the default VFS writes at most 128 KiB - 1 bytes a
/// call (`seekAndWriteFd` keeps 17 bits of the length), more than any one frame.
const GATHER_MAX: usize = 0x1ffff;

/// The file a log is opened as: our header, then the default VFS's file.
#[repr(C)]
struct LogFile {
    base: ffi::sqlite3_file,
    /// Bytes not yet written, to go at `at`.
    gathered: Vec<u8>,
    at: i64,
}

/// Offset of the default VFS's file inside ours (kept 16-aligned).
const REAL_AT: usize = std::mem::size_of::<LogFile>().next_multiple_of(16);

struct Registered {
    /// The default VFS, which does all the work.
    default: *mut ffi::sqlite3_vfs,
    methods: ffi::sqlite3_io_methods,
}

// SAFETY: both point at SQLite's static VFS and a leaked table, never written after start-up.
unsafe impl Send for Registered {}
unsafe impl Sync for Registered {}

static REGISTERED: OnceLock<Result<Registered, c_int>> = OnceLock::new();

/// Registers the VFS (once per process); answers SQLite's error code if it cannot.
pub fn register() -> Result<(), c_int> {
    REGISTERED
        .get_or_init(|| {
            // SAFETY: sqlite3_vfs_find(NULL) returns SQLite's default VFS, static and
            // initialised; we copy it and register the copy, leaked so it lives as long as the
            // process.
            unsafe {
                let code = ffi::sqlite3_initialize();
                if code != ffi::SQLITE_OK {
                    return Err(code);
                }
                let default = ffi::sqlite3_vfs_find(ptr::null());
                if default.is_null() {
                    return Err(ffi::SQLITE_ERROR);
                }
                let mut vfs = *default;
                vfs.zName = c"coalesce".as_ptr();
                vfs.szOsFile = (REAL_AT as c_int) + (*default).szOsFile;
                vfs.xOpen = Some(open);
                vfs.pNext = ptr::null_mut();
                let vfs = Box::leak(Box::new(vfs));
                let code = ffi::sqlite3_vfs_register(vfs, 0);
                if code != ffi::SQLITE_OK {
                    return Err(code);
                }
                Ok(Registered {
                    default,
                    methods: ffi::sqlite3_io_methods {
                        iVersion: 3,
                        xClose: Some(close),
                        xRead: Some(read),
                        xWrite: Some(write),
                        xTruncate: Some(truncate),
                        xSync: Some(sync),
                        xFileSize: Some(file_size),
                        xLock: Some(lock),
                        xUnlock: Some(unlock),
                        xCheckReservedLock: Some(check_reserved_lock),
                        xFileControl: Some(file_control),
                        xSectorSize: Some(sector_size),
                        xDeviceCharacteristics: Some(device_characteristics),
                        xShmMap: Some(shm_map),
                        xShmLock: Some(shm_lock),
                        xShmBarrier: Some(shm_barrier),
                        xShmUnmap: Some(shm_unmap),
                        xFetch: Some(fetch),
                        xUnfetch: Some(unfetch),
                    },
                })
            }
        })
        .as_ref()
        .map(|_| ())
        .map_err(|code| *code)
}

fn registered() -> &'static Registered {
    match REGISTERED.get() {
        Some(Ok(registered)) => registered,
        _ => unreachable!("SQLite opens files through the VFS only after it is registered"),
    }
}

/// The default VFS's file behind one of our log files.
unsafe fn real(file: *mut ffi::sqlite3_file) -> *mut ffi::sqlite3_file {
    // SAFETY: our files are `szOsFile` bytes: our header, then the real file at REAL_AT.
    unsafe { file.cast::<u8>().add(REAL_AT).cast() }
}

unsafe fn methods(real: *mut ffi::sqlite3_file) -> &'static ffi::sqlite3_io_methods {
    // SAFETY: the default VFS set its methods when it opened the real file; they are static.
    unsafe { &*(*real).pMethods }
}

unsafe extern "C" fn open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let registered = registered();
    // SAFETY: SQLite gives us `szOsFile` bytes at `file`, which hold the default VFS's file at
    // its start (for a file we pass through) or after our header (for a log).
    unsafe {
        let default = &*registered.default;
        let open = default.xOpen.expect("the default VFS opens files");
        if flags & ffi::SQLITE_OPEN_WAL == 0 {
            return open(registered.default, name, file, flags, out_flags);
        }
        let inner = real(file);
        (*inner).pMethods = ptr::null();
        let code = open(registered.default, name, inner, flags, out_flags);
        if code != ffi::SQLITE_OK {
            if !(*inner).pMethods.is_null()
                && let Some(close) = methods(inner).xClose
            {
                close(inner);
            }
            (*file).pMethods = ptr::null();
            return code;
        }
        ptr::write(
            file.cast::<LogFile>(),
            LogFile {
                base: ffi::sqlite3_file {
                    pMethods: &registered.methods,
                },
                gathered: Vec::new(),
                at: 0,
            },
        );
        ffi::SQLITE_OK
    }
}

/// Writes what was gathered.
unsafe fn flush(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: `file` is one of our log files (only they get these methods).
    unsafe {
        let log = &mut *file.cast::<LogFile>();
        if log.gathered.is_empty() {
            return ffi::SQLITE_OK;
        }
        let inner = real(file);
        let write = methods(inner).xWrite.expect("files are writable");
        let code = write(
            inner,
            log.gathered.as_ptr().cast(),
            log.gathered.len() as c_int,
            log.at,
        );
        log.gathered.clear();
        code
    }
}

unsafe extern "C" fn write(
    file: *mut ffi::sqlite3_file,
    data: *const c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    // SAFETY: `file` is one of our log files; `data` holds `amount` bytes.
    unsafe {
        let log = &mut *file.cast::<LogFile>();
        let follows = log.at + log.gathered.len() as i64 == offset;
        if !log.gathered.is_empty()
            && (!follows || log.gathered.len() + amount as usize > GATHER_MAX)
        {
            let code = flush(file);
            if code != ffi::SQLITE_OK {
                return code;
            }
        }
        let log = &mut *file.cast::<LogFile>();
        if log.gathered.is_empty() {
            log.at = offset;
        }
        log.gathered.extend_from_slice(std::slice::from_raw_parts(
            data.cast::<u8>(),
            amount as usize,
        ));
        ffi::SQLITE_OK
    }
}

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: `file` is one of our log files, closed once; its header is dropped here.
    unsafe {
        let flushed = flush(file);
        ptr::drop_in_place(&mut (*file.cast::<LogFile>()).gathered);
        let inner = real(file);
        let closed = methods(inner).xClose.expect("files close")(inner);
        if flushed != ffi::SQLITE_OK {
            flushed
        } else {
            closed
        }
    }
}

/// Forwards a call to the real file after writing what was gathered.
macro_rules! flushed_then {
    ($name:ident, $method:ident ( $($arg:ident : $ty:ty),* )) => {
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> c_int {
            // SAFETY: `file` is one of our log files.
            unsafe {
                let code = flush(file);
                if code != ffi::SQLITE_OK {
                    return code;
                }
                let inner = real(file);
                methods(inner).$method.expect("the default VFS has every method")(inner $(, $arg)*)
            }
        }
    };
}

/// Syncs the log: writes what was gathered, then lets a writer that is committing go real-time
/// for the wait (`priority`), then syncs.
unsafe extern "C" fn sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    // SAFETY: `file` is one of our log files.
    unsafe {
        let code = flush(file);
        if code != ffi::SQLITE_OK {
            return code;
        }
        super::priority::before_sync();
        let inner = real(file);
        methods(inner)
            .xSync
            .expect("the default VFS has every method")(inner, flags)
    }
}

/// Forwards a call to the real file as it is.
macro_rules! forward {
    ($name:ident, $method:ident ( $($arg:ident : $ty:ty),* ) -> $ret:ty) => {
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> $ret {
            // SAFETY: `file` is one of our log files.
            unsafe {
                let inner = real(file);
                methods(inner).$method.expect("the default VFS has every method")(inner $(, $arg)*)
            }
        }
    };
}

flushed_then!(read, xRead(data: *mut c_void, amount: c_int, offset: i64));
flushed_then!(truncate, xTruncate(size: i64));
flushed_then!(file_size, xFileSize(size: *mut i64));
flushed_then!(file_control, xFileControl(op: c_int, arg: *mut c_void));
flushed_then!(fetch, xFetch(offset: i64, amount: c_int, out: *mut *mut c_void));
forward!(lock, xLock(level: c_int) -> c_int);
forward!(unlock, xUnlock(level: c_int) -> c_int);
forward!(check_reserved_lock, xCheckReservedLock(out: *mut c_int) -> c_int);
forward!(sector_size, xSectorSize() -> c_int);
forward!(device_characteristics, xDeviceCharacteristics() -> c_int);
forward!(shm_map, xShmMap(page: c_int, size: c_int, extend: c_int, out: *mut *mut c_void) -> c_int);
forward!(shm_lock, xShmLock(offset: c_int, n: c_int, flags: c_int) -> c_int);
forward!(shm_unmap, xShmUnmap(delete: c_int) -> c_int);
forward!(unfetch, xUnfetch(offset: i64, page: *mut c_void) -> c_int);

unsafe extern "C" fn shm_barrier(file: *mut ffi::sqlite3_file) {
    // SAFETY: `file` is one of our log files.
    unsafe {
        let inner = real(file);
        if let Some(barrier) = methods(inner).xShmBarrier {
            barrier(inner)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::{Connection, OpenFlags, params};

    fn state(conn: &Connection) -> (i64, i64) {
        conn.query_row(
            "SELECT count(*), coalesce(sum(length(b)), 0) FROM t",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap()
    }

    /// Commits of every size, spilling transactions included, through the VFS: another
    /// connection sees each one as soon as it is committed, and a copy of the files taken then
    /// (what a crash would leave) recovers it.
    #[test]
    fn every_commit_is_in_the_files_when_it_returns() {
        register().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("coalesce.db");
        let writer = Connection::open_with_flags_and_vfs(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
            NAME,
        )
        .unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
                 PRAGMA cache_size = 16; PRAGMA wal_autocheckpoint = 0;
                 CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB NOT NULL);",
            )
            .unwrap();
        let reader = Connection::open(&path).unwrap();
        let mut expected = (0, 0);
        // One small row; a transaction of a few pages; one of ~400 KiB of frames, more than a
        // write may carry; one that spills pages to the log (cache of 16 pages) and changes them
        // again before its commit.
        for (rows, size, rewrite) in [
            (1, 10, false),
            (8, 3000, false),
            (100, 4000, false),
            (300, 2000, true),
        ] {
            writer.execute_batch("BEGIN").unwrap();
            let first = expected.0;
            for i in 0..rows {
                writer
                    .execute(
                        "INSERT INTO t (id, b) VALUES (?1, zeroblob(?2))",
                        params![first + i, size],
                    )
                    .unwrap();
            }
            if rewrite {
                writer
                    .execute(
                        "UPDATE t SET b = zeroblob(?1) WHERE id >= ?2",
                        params![size + 1, first],
                    )
                    .unwrap();
            }
            writer.execute_batch("COMMIT").unwrap();
            let size = if rewrite { size + 1 } else { size };
            expected = (expected.0 + rows, expected.1 + rows * size);
            assert_eq!(
                state(&reader),
                expected,
                "another connection sees the commit"
            );

            let copy = tempfile::tempdir().unwrap();
            let copied = copy.path().join("copy.db");
            std::fs::copy(&path, &copied).unwrap();
            std::fs::copy(
                dir.path().join("coalesce.db-wal"),
                copy.path().join("copy.db-wal"),
            )
            .unwrap();
            let recovered = Connection::open(&copied).unwrap();
            assert_eq!(
                state(&recovered),
                expected,
                "the files alone hold the commit"
            );
            let check: String = recovered
                .query_row("PRAGMA integrity_check", [], |row| row.get(0))
                .unwrap();
            assert_eq!(check, "ok");
        }
    }
}
