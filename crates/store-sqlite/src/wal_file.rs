//! The writers' WAL files, written a commit at a time.
//!
//! SQLite appends a transaction to the WAL one frame at a time, each frame with two `pwrite`s:
//! its 24-byte header, then its page. A group commit of 30 record creates is some 35 frames, so
//! 70 system calls, each of which also finds, locks and dirties the kernel's cached pages it
//! touches (a 4,096-byte page written at a frame's offset straddles two of them). Measured on
//! this machine's ext4 (`pwrite`s of 35 frames at a time into a 4,000-frame file, one core):
//! 2.2-2.6 µs of CPU a frame as SQLite writes them, 0.34-0.42 µs when a commit's frames go in
//! one `pwrite`.
//!
//! So the writer connections open their WAL through a VFS of their own (`plinth-wal`), which is
//! the default VFS except for the WAL file's writes: a frame's header and page are kept in a
//! buffer while they extend it, and the buffer goes to the file in one write (in pieces of
//! [`MAX_WRITE`]) when it holds a commit frame's page, before SQLite goes on to publish the
//! commit in the WAL index. Nothing
//! else is deferred: any other operation on the file (a read, a sync, a truncation, the size, a
//! lock, a file control, the close), any write that is not the next frame, and a commit frame's
//! header that would start the buffer, first write what is buffered, then run as before.
//!
//! Why that is enough, from SQLite's `walFrames` (the only writer of frames): a commit ends
//! with the commit frame's header and page written back to back, so the commit's frames are in
//! the file when `walFrames` goes on to sync them (`synchronous = FULL`) and to publish them.
//! The other writes it makes are the WAL header at offset 0 (not a frame: written at once), a
//! page written again over an earlier frame of the same transaction (not the next frame: the
//! buffer goes first), the repeated commit frames that pad to a sector boundary (a commit
//! header on an empty buffer: written at once) and the checksums rewritten at commit, each
//! after reading its frame (the read writes the buffer; the last header carries the commit mark
//! and starts no buffer). Frames of a transaction that spilled its cache before committing may
//! stay buffered after `walFrames` returns, but they are not published, and the next operation
//! writes them. A failed write of the buffer is the failing call's error, as a failed `pwrite`
//! was: SQLite rolls the transaction back, nothing is published.
//!
//! The readers, the checkpoint connection and other processes are unchanged: they read frames
//! only once the WAL index says they are there. Tests: the commit pattern below, and a writer
//! through this VFS against readers and crash recovery (`tests`).
//!
//! This is the only `unsafe` code in the workspace: SQLite's VFS is a C interface of function
//! pointers. Every function here forwards to the default VFS's file under it, and the buffer
//! logic is plain safe Rust ([`Frames`]).

#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_int, c_void};
use std::sync::OnceLock;

use rusqlite::ffi;

/// The VFS's name, to open a connection with.
pub(crate) const VFS_NAME: &CStr = c"plinth-wal";

/// Opens a writer connection on `path` (read-write, created if missing), through this VFS when
/// it is registered.
pub(crate) fn open_writer(path: &std::path::Path) -> rusqlite::Result<rusqlite::Connection> {
    if registered() {
        rusqlite::Connection::open_with_flags_and_vfs(
            path,
            rusqlite::OpenFlags::default(),
            VFS_NAME,
        )
    } else {
        rusqlite::Connection::open(path)
    }
}

/// The most a buffer holds before it is written (a frame that would pass it goes after a write
/// of the frames before it): 1 MiB, some 250 frames of 4 KiB pages.
const MAX_BUFFERED: usize = 1 << 20;

/// A WAL frame header's size.
const FRAME_HEADER: usize = 24;

/// SQLite's largest page size: a write after a header longer than this is not its page.
const MAX_PAGE: usize = 65_536;

/// Registers the VFS (once); `false` when SQLite refused (then the writers use the default
/// VFS as before).
pub(crate) fn registered() -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    *REGISTERED.get_or_init(|| {
        let registered = register();
        if !registered {
            tracing::warn!("cannot register the WAL-buffering VFS; writers use SQLite's default");
        }
        registered
    })
}

fn register() -> bool {
    // SAFETY: `sqlite3_vfs_find(NULL)` returns the default VFS, registered by SQLite at
    // initialization and never freed.
    let base = unsafe { ffi::sqlite3_vfs_find(std::ptr::null()) };
    if base.is_null() {
        return false;
    }
    // SAFETY: `base` is a valid, registered VFS (above) that lives for the process.
    let base_ref = unsafe { &*base };
    let Ok(base_size) = usize::try_from(base_ref.szOsFile) else {
        return false;
    };
    let Ok(size) = c_int::try_from(inner_offset() + base_size) else {
        return false;
    };
    if BASE.set(Base(base)).is_err() {
        return false;
    }
    // Everything but `xOpen` is the default VFS's own function, with its `pAppData`: the unix
    // VFS's functions read nothing else from the VFS they are given.
    let vfs = Box::new(ffi::sqlite3_vfs {
        iVersion: base_ref.iVersion,
        szOsFile: size,
        mxPathname: base_ref.mxPathname,
        pNext: std::ptr::null_mut(),
        zName: VFS_NAME.as_ptr(),
        pAppData: base_ref.pAppData,
        xOpen: Some(open),
        xDelete: base_ref.xDelete,
        xAccess: base_ref.xAccess,
        xFullPathname: base_ref.xFullPathname,
        xDlOpen: base_ref.xDlOpen,
        xDlError: base_ref.xDlError,
        xDlSym: base_ref.xDlSym,
        xDlClose: base_ref.xDlClose,
        xRandomness: base_ref.xRandomness,
        xSleep: base_ref.xSleep,
        xCurrentTime: base_ref.xCurrentTime,
        xGetLastError: base_ref.xGetLastError,
        xCurrentTimeInt64: base_ref.xCurrentTimeInt64,
        xSetSystemCall: base_ref.xSetSystemCall,
        xGetSystemCall: base_ref.xGetSystemCall,
        xNextSystemCall: base_ref.xNextSystemCall,
    });
    // SQLite keeps the pointer for the process's life: the box is leaked on purpose.
    let vfs = Box::leak(vfs);
    // SAFETY: `vfs` is a complete VFS that is never freed; not made the default.
    unsafe { ffi::sqlite3_vfs_register(vfs, 0) == ffi::SQLITE_OK }
}

/// The default VFS, under this one.
struct Base(*mut ffi::sqlite3_vfs);

// SAFETY: a registered VFS is immutable and shared by all of SQLite's threads.
unsafe impl Send for Base {}
// SAFETY: as above.
unsafe impl Sync for Base {}

static BASE: OnceLock<Base> = OnceLock::new();

/// A file opened through this VFS when it is a WAL: SQLite's file object (which must come
/// first), the buffer, and the default VFS's file at [`inner_offset`] in the same allocation.
#[repr(C)]
struct WalFile {
    file: ffi::sqlite3_file,
    frames: *mut Frames,
}

/// Where the default VFS's file starts in SQLite's allocation, 8-aligned.
fn inner_offset() -> usize {
    std::mem::size_of::<WalFile>().next_multiple_of(8)
}

/// The default VFS's file under `file`.
///
/// # Safety
/// `file` was opened by [`open`] as a WAL file.
unsafe fn inner(file: *mut ffi::sqlite3_file) -> *mut ffi::sqlite3_file {
    // SAFETY: SQLite allocated `szOsFile` bytes for `file`: our part, then the inner file.
    unsafe { file.cast::<u8>().add(inner_offset()).cast() }
}

/// The buffer of `file`.
///
/// # Safety
/// `file` was opened by [`open`] as a WAL file and is not closed; SQLite calls a file's methods
/// from one thread at a time.
unsafe fn frames<'a>(file: *mut ffi::sqlite3_file) -> &'a mut Frames {
    // SAFETY: as above; `frames` is the box made by `open`, freed only by `close`.
    unsafe { &mut *(*file.cast::<WalFile>()).frames }
}

/// The most the default VFS writes in one call: SQLite's unix VFS takes less than 128 KiB a
/// write (it asserts so and masks longer lengths), so a longer buffer goes in pieces of 124 KiB.
const MAX_WRITE: usize = 124 * 1024;

/// Writes `data` at `offset` with the inner file's `xWrite`, in pieces of at most
/// [`MAX_WRITE`] bytes.
///
/// # Safety
/// `inner` is an open file of the default VFS.
unsafe fn write_inner(inner: *mut ffi::sqlite3_file, data: &[u8], offset: i64) -> c_int {
    // SAFETY: an open file has its methods.
    let Some(write) = (unsafe { (*(*inner).pMethods).xWrite }) else {
        return ffi::SQLITE_IOERR_WRITE;
    };
    let mut at = offset;
    for piece in data.chunks(MAX_WRITE) {
        let Ok(len) = c_int::try_from(piece.len()) else {
            return ffi::SQLITE_IOERR_WRITE;
        };
        // SAFETY: `piece` is valid for `len` bytes.
        let rc = unsafe { write(inner, piece.as_ptr().cast(), len, at) };
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        at += i64::from(len);
    }
    ffi::SQLITE_OK
}

/// Writes `file`'s buffer, if any.
///
/// # Safety
/// As [`frames`].
unsafe fn flush(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: the caller's promise.
    unsafe {
        let inner = inner(file);
        frames(file).flush(|data, offset| write_inner(inner, data, offset))
    }
}

/// What the buffer of one WAL file holds, and the decisions of what to buffer.
#[derive(Debug, Default)]
pub(crate) struct Frames {
    /// The file offset of the first byte buffered.
    start: i64,
    bytes: Vec<u8>,
    /// The last thing buffered is a frame header, whose page may come next: whether the frame
    /// commits a transaction.
    header: Option<bool>,
}

impl Frames {
    fn end(&self) -> i64 {
        self.start + self.bytes.len() as i64
    }

    /// Writes what is buffered with `sink` (one call); the buffer is empty afterwards whatever
    /// the outcome (frames that failed to reach the file belong to a transaction that fails).
    pub(crate) fn flush(&mut self, sink: impl FnOnce(&[u8], i64) -> c_int) -> c_int {
        self.header = None;
        if self.bytes.is_empty() {
            return ffi::SQLITE_OK;
        }
        let rc = sink(&self.bytes, self.start);
        self.bytes.clear();
        if self.bytes.capacity() > 2 * MAX_BUFFERED {
            self.bytes.shrink_to(MAX_BUFFERED);
        }
        rc
    }

    /// SQLite writes `data` at `offset`: buffers it or writes it with `sink` (which may be
    /// called twice: the buffer, then `data`).
    pub(crate) fn write(
        &mut self,
        data: &[u8],
        offset: i64,
        mut sink: impl FnMut(&[u8], i64) -> c_int,
    ) -> c_int {
        if let Some(commits) = self.header
            && offset == self.end()
            && data.len() <= MAX_PAGE
        {
            // The page of the header just buffered.
            self.header = None;
            self.bytes.extend_from_slice(data);
            return if commits {
                self.flush(sink)
            } else {
                ffi::SQLITE_OK
            };
        }
        if data.len() == FRAME_HEADER {
            let commits = data[4..8] != [0; 4];
            if !self.bytes.is_empty()
                && (offset != self.end()
                    || self.bytes.len() + FRAME_HEADER + MAX_PAGE > MAX_BUFFERED)
            {
                let rc = self.flush(&mut sink);
                if rc != ffi::SQLITE_OK {
                    return rc;
                }
            }
            // A commit frame's header that would start the buffer is written at once: the
            // single frame of a transaction, a padding frame, or a checksum rewritten at commit
            // (whose page is never written after it).
            if !(commits && self.bytes.is_empty()) {
                if self.bytes.is_empty() {
                    self.start = offset;
                }
                self.bytes.extend_from_slice(data);
                self.header = Some(commits);
                return ffi::SQLITE_OK;
            }
        }
        let rc = self.flush(&mut sink);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        sink(data, offset)
    }
}

unsafe extern "C" fn open(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let _ = vfs;
    let Some(Base(base)) = BASE.get() else {
        return ffi::SQLITE_CANTOPEN;
    };
    // SAFETY: `base` is the registered default VFS (see `register`).
    let Some(base_open) = (unsafe { (**base).xOpen }) else {
        return ffi::SQLITE_CANTOPEN;
    };
    if flags & ffi::SQLITE_OPEN_WAL == 0 {
        // Not a WAL: the default VFS's file, in the start of SQLite's (larger) allocation.
        // SAFETY: SQLite's arguments, passed on; `file` has room for the base's file.
        return unsafe { base_open(*base, name, file, flags, out_flags) };
    }
    // SAFETY: `file` has `szOsFile` bytes: ours, then the base's file at `inner_offset`.
    unsafe {
        let inner = inner(file);
        (*file).pMethods = std::ptr::null();
        let rc = base_open(*base, name, inner, flags, out_flags);
        if rc != ffi::SQLITE_OK {
            // SQLite closes a file whose open failed only when its methods are set.
            if !(*inner).pMethods.is_null()
                && let Some(close) = (*(*inner).pMethods).xClose
            {
                close(inner);
            }
            return rc;
        }
        let wal = file.cast::<WalFile>();
        (*wal).frames = Box::into_raw(Box::<Frames>::default());
        (*wal).file.pMethods = &METHODS;
    }
    ffi::SQLITE_OK
}

/// Calls the inner file's method `$method` with `$args`, or answers `$missing` when it has
/// none.
macro_rules! forward {
    ($file:expr, $method:ident, $missing:expr $(, $arg:expr)*) => {{
        // SAFETY: `$file` is an open WAL file of this VFS; its inner file is open.
        unsafe {
            let inner = inner($file);
            match (*(*inner).pMethods).$method {
                Some(method) => method(inner $(, $arg)*),
                None => $missing,
            }
        }
    }};
}

/// Writes the buffer, then forwards: for every operation that reads or depends on the file.
macro_rules! after_flush {
    ($file:expr, $method:ident, $missing:expr $(, $arg:expr)*) => {{
        // SAFETY: `$file` is an open WAL file of this VFS.
        let rc = unsafe { flush($file) };
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        forward!($file, $method, $missing $(, $arg)*)
    }};
}

static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
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
};

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: an open WAL file of this VFS.
    let flushed = unsafe { flush(file) };
    let closed = forward!(file, xClose, ffi::SQLITE_OK);
    // SAFETY: the inner file is closed; the buffer is freed once and the methods cleared, so
    // nothing reaches it again.
    unsafe {
        let wal = file.cast::<WalFile>();
        drop(Box::from_raw((*wal).frames));
        (*wal).frames = std::ptr::null_mut();
        (*wal).file.pMethods = std::ptr::null();
    }
    if flushed != ffi::SQLITE_OK {
        flushed
    } else {
        closed
    }
}

unsafe extern "C" fn read(
    file: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    after_flush!(file, xRead, ffi::SQLITE_IOERR_READ, buf, amount, offset)
}

unsafe extern "C" fn write(
    file: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    let Ok(len) = usize::try_from(amount) else {
        return ffi::SQLITE_IOERR_WRITE;
    };
    // SAFETY: SQLite passes `amount` readable bytes at `buf`; the file is an open WAL file of
    // this VFS.
    unsafe {
        let data = std::slice::from_raw_parts(buf.cast::<u8>(), len);
        let inner = inner(file);
        frames(file).write(data, offset, |bytes, at| write_inner(inner, bytes, at))
    }
}

unsafe extern "C" fn truncate(file: *mut ffi::sqlite3_file, size: i64) -> c_int {
    after_flush!(file, xTruncate, ffi::SQLITE_IOERR_TRUNCATE, size)
}

unsafe extern "C" fn sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    after_flush!(file, xSync, ffi::SQLITE_IOERR_FSYNC, flags)
}

unsafe extern "C" fn file_size(file: *mut ffi::sqlite3_file, size: *mut i64) -> c_int {
    after_flush!(file, xFileSize, ffi::SQLITE_IOERR_FSTAT, size)
}

unsafe extern "C" fn lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    after_flush!(file, xLock, ffi::SQLITE_IOERR_LOCK, level)
}

unsafe extern "C" fn unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    after_flush!(file, xUnlock, ffi::SQLITE_IOERR_UNLOCK, level)
}

unsafe extern "C" fn check_reserved_lock(file: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    after_flush!(
        file,
        xCheckReservedLock,
        ffi::SQLITE_IOERR_CHECKRESERVEDLOCK,
        out
    )
}

unsafe extern "C" fn file_control(
    file: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    after_flush!(file, xFileControl, ffi::SQLITE_NOTFOUND, op, arg)
}

unsafe extern "C" fn sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    forward!(file, xSectorSize, 4096)
}

unsafe extern "C" fn device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    forward!(file, xDeviceCharacteristics, 0)
}

unsafe extern "C" fn shm_map(
    file: *mut ffi::sqlite3_file,
    page: c_int,
    size: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    forward!(
        file,
        xShmMap,
        ffi::SQLITE_IOERR_SHMMAP,
        page,
        size,
        extend,
        out
    )
}

unsafe extern "C" fn shm_lock(
    file: *mut ffi::sqlite3_file,
    offset: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    forward!(file, xShmLock, ffi::SQLITE_IOERR_SHMLOCK, offset, n, flags)
}

unsafe extern "C" fn shm_barrier(file: *mut ffi::sqlite3_file) {
    forward!(file, xShmBarrier, ())
}

unsafe extern "C" fn shm_unmap(file: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    forward!(file, xShmUnmap, ffi::SQLITE_OK, delete)
}

unsafe extern "C" fn fetch(
    file: *mut ffi::sqlite3_file,
    offset: i64,
    amount: c_int,
    out: *mut *mut c_void,
) -> c_int {
    // SAFETY: `out` is SQLite's pointer to fill; no mapping is an answer it handles.
    let none = unsafe {
        *out = std::ptr::null_mut();
        ffi::SQLITE_OK
    };
    after_flush!(file, xFetch, none, offset, amount, out)
}

unsafe extern "C" fn unfetch(
    file: *mut ffi::sqlite3_file,
    offset: i64,
    page: *mut c_void,
) -> c_int {
    forward!(file, xUnfetch, ffi::SQLITE_OK, offset, page)
}

#[cfg(test)]
mod tests;
