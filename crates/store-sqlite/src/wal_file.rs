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
//! So the writer connections open their database through a VFS of their own (`plinth-wal`),
//! the default VFS except for two things. The WAL file's frames are kept in a buffer while they
//! extend it, and the buffer goes to the file in one write (in pieces of [`MAX_WRITE`]) when it
//! holds a commit frame's page, before SQLite goes on to sync the commit (`synchronous = FULL`)
//! or publish it in the WAL index. And the database file's release of the WAL write lock first
//! writes whatever is still buffered, so nothing buffered outlives the lock that reserved its
//! place in the file.
//!
//! What is buffered: a frame header (24 bytes at a frame's offset, known from the page size in
//! the WAL's own header) that continues the buffer, or starts it when it does not carry the
//! commit mark, and the page (a page size's bytes) that follows a buffered header. Anything
//! else first writes the buffer, then runs as before: any other operation on the WAL file (a
//! read, a sync, a truncation, the size, the close), a write that is not the next frame, and a
//! commit header that would start the buffer.
//!
//! Why that is enough, from SQLite's `walFrames` (the only writer of frames): a commit ends
//! with the commit frame's header and page written back to back, so the commit's frames are in
//! the file before `walFrames` syncs or publishes them. Its other writes are the WAL header at
//! offset 0 (not a frame), a page written again over an earlier frame of the same transaction
//! (not the next frame), the repeated commit frames that pad to a sector boundary without
//! power-safe overwrite (a commit header on an empty buffer, and pieces split around a sync
//! that are neither a frame's header nor a whole page) and the checksums rewritten at commit
//! (each after a read of its frame; the last carries the commit mark). A spill (a page written
//! before its transaction commits) may stay buffered when `walFrames` returns; it is not
//! published, and the end of the transaction (commit or rollback) releases the write lock,
//! which writes it. A failed write of the buffer is the failing call's error, as a failed
//! `pwrite` was: SQLite rolls the transaction back and publishes nothing.
//!
//! The readers, the checkpoint connection and other processes are unchanged: they read frames
//! only once the WAL index says they are there, and write frames only under the write lock.
//! Tests: the buffer's decisions on a file in memory, and writers through this VFS against
//! readers, another writer and crash recovery (`tests`).
//!
//! This is the only `unsafe` code in the workspace: SQLite's VFS is a C interface of function
//! pointers. Every function here forwards to the default VFS's file under it, and the buffer
//! logic is plain safe Rust ([`Frames`]). A panic cannot unwind out of these `extern "C"`
//! functions: it aborts the process (only an allocation failure could cause one).

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

/// SQLite's largest page size.
const MAX_PAGE: usize = 65_536;

/// A WAL file's own header, before its first frame.
const WAL_HEADER: usize = 32;

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

/// A database or WAL file opened through this VFS: SQLite's file object (which must come
/// first), the WAL's buffer (null for a database file), the other file of the pair (a WAL's
/// database, a database's WAL; null when there is none or it closed), and the default VFS's
/// file at [`inner_offset`] in the same allocation.
#[repr(C)]
struct Wrapped {
    file: ffi::sqlite3_file,
    frames: *mut Frames,
    peer: *mut Wrapped,
}

/// Where the default VFS's file starts in SQLite's allocation, 8-aligned.
fn inner_offset() -> usize {
    std::mem::size_of::<Wrapped>().next_multiple_of(8)
}

/// The default VFS's file under `file`.
///
/// # Safety
/// `file` was opened by [`open`] and wrapped.
unsafe fn inner(file: *mut ffi::sqlite3_file) -> *mut ffi::sqlite3_file {
    // SAFETY: SQLite allocated `szOsFile` bytes for `file`: ours, then the inner file.
    unsafe { file.cast::<u8>().add(inner_offset()).cast() }
}

/// The version of the inner file's methods (the unix VFS's are version 3).
///
/// # Safety
/// `inner` is an open file of the default VFS.
unsafe fn version(inner: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: an open file has its methods.
    unsafe { (*(*inner).pMethods).iVersion }
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

/// Writes the buffer of the WAL file `file`, if any.
///
/// # Safety
/// `file` is an open WAL file of this VFS; SQLite calls a connection's files from one thread at
/// a time.
unsafe fn flush(file: *mut Wrapped) -> c_int {
    // SAFETY: the caller's promise: `frames` is the box made by `open`, freed only by `close`.
    unsafe {
        let inner = inner(file.cast());
        (*(*file).frames).flush(|data, offset| write_inner(inner, data, offset))
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
    /// The database's page size, from the WAL's header; nothing is buffered until it is known.
    page_size: Option<usize>,
    /// The end of the furthest write so far (tests: what counts as writing over a frame).
    #[cfg(test)]
    furthest: i64,
}

#[cfg(test)]
thread_local! {
    /// Pages written over an earlier frame, commit headers written over an earlier frame's (a
    /// checksum rewritten at commit), and 24-byte writes not at a frame's offset (a padding
    /// frame split around a sync), by this thread's writers: the tests check that they reach
    /// these paths.
    pub(crate) static SEEN: std::cell::Cell<(u64, u64, u64)> =
        const { std::cell::Cell::new((0, 0, 0)) };
}

impl Frames {
    fn end(&self) -> i64 {
        self.start + self.bytes.len() as i64
    }

    /// Notes the page size a WAL header (its first [`WAL_HEADER`] bytes) gives, if valid.
    pub(crate) fn learn(&mut self, wal_header: &[u8]) {
        let size = wal_header
            .get(8..12)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(|b| u32::from_be_bytes(b) as usize);
        if let Some(size) = size
            && size.is_power_of_two()
            && (512..=MAX_PAGE).contains(&size)
        {
            self.page_size = Some(size);
        }
    }

    /// Whether a write of `len` bytes at `offset` is a frame's header.
    fn is_header(&self, len: usize, offset: i64) -> bool {
        let Some(page) = self.page_size else {
            return false;
        };
        let Ok(at) = u64::try_from(offset) else {
            return false;
        };
        len == FRAME_HEADER
            && at >= WAL_HEADER as u64
            && (at - WAL_HEADER as u64).is_multiple_of((page + FRAME_HEADER) as u64)
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
        #[cfg(test)]
        {
            let over = offset + (data.len() as i64) <= self.furthest;
            let page = Some(data.len()) == self.page_size && self.header.is_none();
            let commit_header = self.is_header(data.len(), offset) && data[4..8] != [0; 4];
            let piece = data.len() == FRAME_HEADER
                && offset >= WAL_HEADER as i64
                && self.page_size.is_some()
                && !self.is_header(data.len(), offset);
            SEEN.with(|seen| {
                let (pages, headers, pieces) = seen.get();
                seen.set((
                    pages + u64::from(over && page),
                    headers + u64::from(over && commit_header),
                    pieces + u64::from(piece),
                ));
            });
            self.furthest = self.furthest.max(offset + data.len() as i64);
        }
        if let Some(commits) = self.header
            && offset == self.end()
            && Some(data.len()) == self.page_size
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
        if self.is_header(data.len(), offset) {
            let commits = data[4..8] != [0; 4];
            if !self.bytes.is_empty()
                && (offset != self.end()
                    || self.header.is_some()
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
        if offset == 0 && data.len() == WAL_HEADER {
            self.learn(data);
        }
        sink(data, offset)
    }
}

unsafe extern "C" fn open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let Some(Base(base)) = BASE.get() else {
        return ffi::SQLITE_CANTOPEN;
    };
    // SAFETY: `base` is the registered default VFS (see `register`).
    let Some(base_open) = (unsafe { (**base).xOpen }) else {
        return ffi::SQLITE_CANTOPEN;
    };
    let wal = flags & ffi::SQLITE_OPEN_WAL != 0;
    if !wal && flags & ffi::SQLITE_OPEN_MAIN_DB == 0 {
        // Journals, temporary files: the default VFS's file, in the start of SQLite's (larger)
        // allocation.
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
        let wrapped = file.cast::<Wrapped>();
        (*wrapped).peer = std::ptr::null_mut();
        if !wal {
            (*wrapped).frames = std::ptr::null_mut();
            (*wrapped).file.pMethods = &DB_METHODS;
            return ffi::SQLITE_OK;
        }
        let mut frames = Box::<Frames>::default();
        // A WAL that already has frames keeps its header: its page size is read here (a new
        // or empty WAL gets it from the header SQLite writes first).
        let mut header = [0u8; WAL_HEADER];
        if let Some(read) = (*(*inner).pMethods).xRead
            && read(inner, header.as_mut_ptr().cast(), WAL_HEADER as c_int, 0) == ffi::SQLITE_OK
        {
            frames.learn(&header);
        }
        (*wrapped).frames = Box::into_raw(frames);
        (*wrapped).file.pMethods = &WAL_METHODS;
        // The database file of this WAL, when it was opened through this VFS too: its release
        // of the write lock writes this buffer.
        let db = ffi::sqlite3_database_file_object(name);
        if !db.is_null() && std::ptr::eq((*db).pMethods, &DB_METHODS) {
            let db = db.cast::<Wrapped>();
            (*db).peer = wrapped;
            (*wrapped).peer = db;
        }
    }
    ffi::SQLITE_OK
}

/// Calls the inner file's method `$method` with `$args`, or answers `$missing` when it has
/// none (or its methods' version, below `$version`, has no such field).
macro_rules! forward {
    ($file:expr, $version:expr, $method:ident, $missing:expr $(, $arg:expr)*) => {{
        // SAFETY: `$file` is an open file of this VFS; its inner file is open, and its methods
        // have the field when their version is at least `$version`.
        unsafe {
            let inner = inner($file);
            if version(inner) < $version {
                $missing
            } else {
                match (*(*inner).pMethods).$method {
                    Some(method) => method(inner $(, $arg)*),
                    None => $missing,
                }
            }
        }
    }};
}

/// Writes the WAL's buffer, then forwards: for every operation that reads or depends on the
/// file.
macro_rules! after_flush {
    ($file:expr, $version:expr, $method:ident, $missing:expr $(, $arg:expr)*) => {{
        // SAFETY: `$file` is an open WAL file of this VFS.
        let rc = unsafe { flush($file.cast()) };
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        forward!($file, $version, $method, $missing $(, $arg)*)
    }};
}

static WAL_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(wal_close),
    xRead: Some(wal_read),
    xWrite: Some(wal_write),
    xTruncate: Some(wal_truncate),
    xSync: Some(wal_sync),
    xFileSize: Some(wal_file_size),
    xLock: Some(wal_lock),
    xUnlock: Some(wal_unlock),
    xCheckReservedLock: Some(wal_check_reserved_lock),
    xFileControl: Some(wal_file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: Some(shm_map),
    xShmLock: Some(shm_lock),
    xShmBarrier: Some(shm_barrier),
    xShmUnmap: Some(shm_unmap),
    xFetch: Some(wal_fetch),
    xUnfetch: Some(unfetch),
};

/// The database file's methods: the default VFS's, but for the WAL write lock's release (and
/// the close), which first write the WAL's buffer.
static DB_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(db_close),
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
    xShmLock: Some(db_shm_lock),
    xShmBarrier: Some(shm_barrier),
    xShmUnmap: Some(shm_unmap),
    xFetch: Some(fetch),
    xUnfetch: Some(unfetch),
};

/// Writes the buffer of the WAL paired with the database file `file`, if any.
///
/// # Safety
/// `file` is an open database file of this VFS.
unsafe fn flush_peer(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: the peer pointer is cleared by whichever of the pair closes first.
    unsafe {
        let peer = (*file.cast::<Wrapped>()).peer;
        if peer.is_null() {
            ffi::SQLITE_OK
        } else {
            flush(peer)
        }
    }
}

/// Unpairs `file` from its peer (each clears the other's pointer), at its close.
///
/// # Safety
/// `file` is an open file of this VFS.
unsafe fn unpair(file: *mut ffi::sqlite3_file) {
    // SAFETY: both files of a pair are alive while paired.
    unsafe {
        let wrapped = file.cast::<Wrapped>();
        let peer = (*wrapped).peer;
        if !peer.is_null() {
            (*peer).peer = std::ptr::null_mut();
            (*wrapped).peer = std::ptr::null_mut();
        }
    }
}

/// The end of a close: the inner file's close, the pair undone, the methods cleared (nothing
/// reaches the file again); the first error of `flushed` and the close.
///
/// # Safety
/// `file` is an open file of this VFS, its buffer (if a WAL) already freed.
unsafe fn close_inner(file: *mut ffi::sqlite3_file, flushed: c_int) -> c_int {
    let closed = forward!(file, 1, xClose, ffi::SQLITE_OK);
    // SAFETY: the caller's promise; the inner file is closed.
    unsafe {
        unpair(file);
        (*file).pMethods = std::ptr::null();
    }
    if flushed != ffi::SQLITE_OK {
        flushed
    } else {
        closed
    }
}

unsafe extern "C" fn wal_close(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: an open WAL file of this VFS; its buffer is written, then freed once.
    unsafe {
        let flushed = flush(file.cast());
        let wal = file.cast::<Wrapped>();
        drop(Box::from_raw((*wal).frames));
        (*wal).frames = std::ptr::null_mut();
        close_inner(file, flushed)
    }
}

unsafe extern "C" fn db_close(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: an open database file of this VFS.
    unsafe { close_inner(file, flush_peer(file)) }
}

unsafe extern "C" fn db_shm_lock(
    file: *mut ffi::sqlite3_file,
    offset: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    // The WAL write lock is the first of the WAL index's locks: before any release that covers
    // it, the frames written under it reach the file (a spill of a transaction rolled back, or
    // anything else left), so that no later write of them can land on frames another writer
    // wrote after the lock went.
    if flags & ffi::SQLITE_SHM_UNLOCK != 0 && offset <= 0 && offset + n > 0 {
        // SAFETY: an open database file of this VFS.
        let rc = unsafe { flush_peer(file) };
        if rc != ffi::SQLITE_OK {
            tracing::warn!(
                rc,
                "cannot write WAL frames before releasing the write lock"
            );
        }
    }
    // SAFETY: SQLite's arguments, passed on.
    unsafe { shm_lock(file, offset, n, flags) }
}

unsafe extern "C" fn wal_read(
    file: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    // SAFETY: SQLite's arguments, passed on.
    let rc = unsafe { wal_read_inner(file, buf, amount, offset) };
    if rc == ffi::SQLITE_OK && offset == 0 && amount >= WAL_HEADER as c_int {
        // SAFETY: SQLite's buffer holds `amount` bytes, just read; `frames` is alive.
        unsafe {
            let header = std::slice::from_raw_parts(buf.cast::<u8>(), WAL_HEADER);
            (*(*file.cast::<Wrapped>()).frames).learn(header);
        }
    }
    rc
}

unsafe extern "C" fn wal_write(
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
        (*(*file.cast::<Wrapped>()).frames)
            .write(data, offset, |bytes, at| write_inner(inner, bytes, at))
    }
}

/// The methods that run the inner file's own, each as a pair: the WAL's, which writes the
/// buffer first (for every operation that reads or depends on the file), and the database
/// file's, which only forwards.
macro_rules! pairs {
    ($($wal:ident, $db:ident: $method:ident($($arg:ident: $ty:ty),*) else $missing:expr;)*) => {$(
        unsafe extern "C" fn $wal(file: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> c_int {
            after_flush!(file, 1, $method, $missing $(, $arg)*)
        }

        unsafe extern "C" fn $db(file: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> c_int {
            forward!(file, 1, $method, $missing $(, $arg)*)
        }
    )*};
}

pairs! {
    wal_read_inner, read: xRead(buf: *mut c_void, amount: c_int, offset: i64)
        else ffi::SQLITE_IOERR_READ;
    wal_truncate, truncate: xTruncate(size: i64) else ffi::SQLITE_IOERR_TRUNCATE;
    wal_sync, sync: xSync(flags: c_int) else ffi::SQLITE_IOERR_FSYNC;
    wal_file_size, file_size: xFileSize(size: *mut i64) else ffi::SQLITE_IOERR_FSTAT;
    wal_lock, lock: xLock(level: c_int) else ffi::SQLITE_IOERR_LOCK;
    wal_unlock, unlock: xUnlock(level: c_int) else ffi::SQLITE_IOERR_UNLOCK;
    wal_check_reserved_lock, check_reserved_lock: xCheckReservedLock(out: *mut c_int)
        else ffi::SQLITE_IOERR_CHECKRESERVEDLOCK;
    wal_file_control, file_control: xFileControl(op: c_int, arg: *mut c_void)
        else ffi::SQLITE_NOTFOUND;
}

unsafe extern "C" fn wal_fetch(
    file: *mut ffi::sqlite3_file,
    offset: i64,
    amount: c_int,
    out: *mut *mut c_void,
) -> c_int {
    // SAFETY: an open WAL file of this VFS.
    let rc = unsafe { flush(file.cast()) };
    if rc != ffi::SQLITE_OK {
        return rc;
    }
    // SAFETY: SQLite's arguments, passed on.
    unsafe { fetch(file, offset, amount, out) }
}

unsafe extern "C" fn write(
    file: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    forward!(
        file,
        1,
        xWrite,
        ffi::SQLITE_IOERR_WRITE,
        buf,
        amount,
        offset
    )
}

unsafe extern "C" fn sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    forward!(file, 1, xSectorSize, 4096)
}

unsafe extern "C" fn device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    forward!(file, 1, xDeviceCharacteristics, 0)
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
        2,
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
    forward!(
        file,
        2,
        xShmLock,
        ffi::SQLITE_IOERR_SHMLOCK,
        offset,
        n,
        flags
    )
}

unsafe extern "C" fn shm_barrier(file: *mut ffi::sqlite3_file) {
    forward!(file, 2, xShmBarrier, ())
}

unsafe extern "C" fn shm_unmap(file: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    forward!(file, 2, xShmUnmap, ffi::SQLITE_OK, delete)
}

unsafe extern "C" fn fetch(
    file: *mut ffi::sqlite3_file,
    offset: i64,
    amount: c_int,
    out: *mut *mut c_void,
) -> c_int {
    // SAFETY: `out` is SQLite's pointer to fill; no mapping is an answer it handles.
    unsafe { *out = std::ptr::null_mut() };
    forward!(file, 3, xFetch, ffi::SQLITE_OK, offset, amount, out)
}

unsafe extern "C" fn unfetch(
    file: *mut ffi::sqlite3_file,
    offset: i64,
    page: *mut c_void,
) -> c_int {
    forward!(file, 3, xUnfetch, ffi::SQLITE_OK, offset, page)
}

#[cfg(test)]
mod tests;
