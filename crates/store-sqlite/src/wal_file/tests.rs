use std::path::Path;

use rusqlite::{Connection, OpenFlags, params};

use super::*;

/// A file in memory, and the writes that reached it.
#[derive(Default)]
struct Disk {
    bytes: Vec<u8>,
    writes: Vec<(i64, usize)>,
}

impl Disk {
    fn write(&mut self, data: &[u8], offset: i64) -> c_int {
        let at = usize::try_from(offset).expect("offset");
        if self.bytes.len() < at + data.len() {
            self.bytes.resize(at + data.len(), 0);
        }
        self.bytes[at..at + data.len()].copy_from_slice(data);
        self.writes.push((offset, data.len()));
        ffi::SQLITE_OK
    }
}

fn header(commit: u32) -> Vec<u8> {
    let mut h = vec![0xAB; FRAME_HEADER];
    h[4..8].copy_from_slice(&commit.to_be_bytes());
    h
}

fn page(fill: u8) -> Vec<u8> {
    vec![fill; 4096]
}

const FRAME: i64 = (FRAME_HEADER + 4096) as i64;

/// A WAL header giving `page_size`.
fn wal_header(page_size: u32) -> Vec<u8> {
    let mut h = vec![0x37; WAL_HEADER];
    h[8..12].copy_from_slice(&page_size.to_be_bytes());
    h
}

/// A buffer that knows the page size (4 KiB), as after SQLite wrote or read the WAL header.
fn frames() -> Frames {
    let mut frames = Frames::default();
    frames.learn(&wal_header(4096));
    frames
}

/// Writes one frame (header then page, as SQLite does) at `offset`.
fn frame(frames: &mut Frames, disk: &mut Disk, offset: i64, commit: u32, fill: u8) {
    let h = header(commit);
    assert_eq!(
        frames.write(&h, offset, |d, o| disk.write(d, o)),
        ffi::SQLITE_OK
    );
    let p = page(fill);
    assert_eq!(
        frames.write(&p, offset + FRAME_HEADER as i64, |d, o| disk.write(d, o)),
        ffi::SQLITE_OK
    );
}

/// What the file holds when every write goes straight to it.
fn direct(writes: &[(Vec<u8>, i64)]) -> Vec<u8> {
    let mut disk = Disk::default();
    for (data, offset) in writes {
        disk.write(data, *offset);
    }
    disk.bytes
}

#[test]
fn a_commit_reaches_the_file_in_one_write_when_its_last_page_is_written() {
    let mut frames = Frames::default();
    let mut disk = Disk::default();
    // The WAL header: not a frame, written at once.
    assert_eq!(
        frames.write(&wal_header(4096), 0, |d, o| disk.write(d, o)),
        ffi::SQLITE_OK
    );
    assert_eq!(disk.writes, [(0, 32)]);
    frame(&mut frames, &mut disk, 32, 0, 1);
    frame(&mut frames, &mut disk, 32 + FRAME, 0, 2);
    assert_eq!(
        disk.writes.len(),
        1,
        "nothing written before the commit frame"
    );
    let h = header(3);
    frames.write(&h, 32 + 2 * FRAME, |d, o| disk.write(d, o));
    assert_eq!(disk.writes.len(), 1, "the commit header waits for its page");
    frames.write(&page(3), 32 + 2 * FRAME + 24, |d, o| disk.write(d, o));
    assert_eq!(disk.writes, [(0, 32), (32, 3 * FRAME as usize)]);
    assert!(frames.bytes.is_empty() && frames.header.is_none());
    let expected = direct(&[
        (wal_header(4096), 0),
        (header(0), 32),
        (page(1), 56),
        (header(0), 32 + FRAME),
        (page(2), 56 + FRAME),
        (header(3), 32 + 2 * FRAME),
        (page(3), 56 + 2 * FRAME),
    ]);
    assert_eq!(disk.bytes, expected);
}

#[test]
fn a_commit_header_that_would_start_the_buffer_is_written_at_once() {
    // A transaction of one frame, a padding frame, or the last checksum rewritten at commit:
    // nothing may wait for a page that does not come.
    let mut frames = frames();
    let mut disk = Disk::default();
    frames.write(&header(5), 32, |d, o| disk.write(d, o));
    assert_eq!(disk.writes, [(32, 24)]);
    frames.write(&page(5), 56, |d, o| disk.write(d, o));
    assert_eq!(disk.writes, [(32, 24), (56, 4096)]);
    assert!(frames.bytes.is_empty());
}

#[test]
fn anything_but_the_next_frame_writes_the_buffer_first() {
    let mut frames = frames();
    let mut disk = Disk::default();
    frame(&mut frames, &mut disk, 32, 0, 1);
    frame(&mut frames, &mut disk, 32 + FRAME, 0, 2);
    // A page written again over the first frame (a page changed again after a spill).
    frames.write(&page(9), 56, |d, o| disk.write(d, o));
    assert_eq!(disk.writes, [(32, 2 * FRAME as usize), (56, 4096)]);
    // A header buffered, then a read (here: the flush every other operation makes).
    frames.write(&header(0), 32 + 2 * FRAME, |d, o| disk.write(d, o));
    assert_eq!(disk.writes.len(), 2);
    assert_eq!(frames.flush(|d, o| disk.write(d, o)), ffi::SQLITE_OK);
    assert_eq!(disk.writes[2], (32 + 2 * FRAME, 24));
    // A frame that does not follow the buffer.
    frame(&mut frames, &mut disk, 32 + 3 * FRAME, 0, 4);
    frames.write(&header(0), 32 + 10 * FRAME, |d, o| disk.write(d, o));
    assert_eq!(disk.writes[3], (32 + 3 * FRAME, FRAME as usize));
    frames.flush(|d, o| disk.write(d, o));
    let expected = direct(&[
        (header(0), 32),
        (page(1), 56),
        (header(0), 32 + FRAME),
        (page(2), 56 + FRAME),
        (page(9), 56),
        (header(0), 32 + 2 * FRAME),
        (header(0), 32 + 3 * FRAME),
        (page(4), 56 + 3 * FRAME),
        (header(0), 32 + 10 * FRAME),
    ]);
    assert_eq!(disk.bytes, expected);
}

#[test]
fn the_buffer_stays_under_its_bound() {
    let mut frames = frames();
    let mut disk = Disk::default();
    let count = 3 * MAX_BUFFERED as i64 / FRAME;
    for n in 0..count {
        frame(&mut frames, &mut disk, 32 + n * FRAME, 0, n as u8);
        assert!(frames.bytes.len() <= MAX_BUFFERED);
    }
    frame(&mut frames, &mut disk, 32 + count * FRAME, 7, 0);
    assert!(frames.bytes.is_empty());
    assert!(
        disk.writes.len() >= 3 && disk.writes.len() <= 5,
        "{:?}",
        disk.writes.len()
    );
    assert_eq!(
        disk.bytes.len(),
        32 + (count as usize + 1) * FRAME as usize,
        "every frame written once, end to end"
    );
}

#[test]
fn a_failed_write_is_the_callers_error_and_empties_the_buffer() {
    let mut frames = frames();
    let mut disk = Disk::default();
    frame(&mut frames, &mut disk, 32, 0, 1);
    frames.write(&header(2), 32 + FRAME, |d, o| disk.write(d, o));
    let rc = frames.write(&page(2), 56 + FRAME, |_, _| ffi::SQLITE_IOERR_WRITE);
    assert_eq!(rc, ffi::SQLITE_IOERR_WRITE);
    assert!(frames.bytes.is_empty() && frames.header.is_none());
    assert!(disk.writes.is_empty());
}

#[test]
fn nothing_is_buffered_before_the_page_size_is_known() {
    let mut frames = Frames::default();
    let mut disk = Disk::default();
    frame(&mut frames, &mut disk, 32, 0, 1);
    frame(&mut frames, &mut disk, 32 + FRAME, 3, 2);
    assert_eq!(
        disk.writes,
        [(32, 24), (56, 4096), (32 + FRAME, 24), (56 + FRAME, 4096)]
    );
    // A header with a page size SQLite never uses teaches nothing.
    frames.learn(&wal_header(3000));
    frames.learn(&wal_header(131_072));
    assert_eq!(frames.page_size, None);
}

#[test]
fn pieces_split_around_a_sync_are_not_taken_for_frames() {
    // Without power-safe overwrite, `synchronous = FULL` pads a commit with copies of its
    // commit frame up to the sector boundary, and the write that crosses the boundary is split
    // around a sync: a piece can be exactly 24 bytes and look like a frame header.
    for page in [512_usize, 1024, 2048, 4096] {
        let mut frames = Frames::default();
        let mut disk = Disk::default();
        frames.write(&wal_header(page as u32), 0, |d, o| disk.write(d, o));
        let frame = (FRAME_HEADER + page) as i64;
        let at = 32 + 5 * frame;
        // A padding frame: its commit header alone on an empty buffer, then its page in two
        // pieces around the sync, the second 24 bytes of zeros.
        frames.write(&header(9), at, |d, o| disk.write(d, o));
        frames.write(&vec![1; page - 24], at + 24, |d, o| disk.write(d, o));
        assert_eq!(frames.flush(|d, o| disk.write(d, o)), ffi::SQLITE_OK);
        frames.write(&[0; 24], at + page as i64, |d, o| disk.write(d, o));
        assert!(
            frames.bytes.is_empty(),
            "page {page}: nothing left buffered"
        );
        assert_eq!(
            disk.bytes.len() as i64,
            at + frame,
            "page {page}: the frame is whole"
        );
    }
}

fn open_through_vfs(path: &Path, sync_full: bool) -> Connection {
    assert!(registered(), "the VFS registers");
    let writer = open_writer(path).expect("opens through the VFS");
    writer
        .pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))
        .expect("wal");
    writer
        .pragma_update(
            None,
            "synchronous",
            if sync_full { "FULL" } else { "NORMAL" },
        )
        .expect("synchronous");
    // A small cache: large transactions spill frames before they commit and write some pages
    // again over their own frames, the paths that rewrite checksums at commit.
    writer
        .pragma_update(None, "cache_size", 8)
        .expect("cache_size");
    // Checkpoints by hand only, so the WAL holds every commit for the recovery below.
    writer
        .pragma_update(None, "wal_autocheckpoint", 0)
        .expect("autocheckpoint");
    writer
        .execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB, n INTEGER)")
        .expect("table");
    writer
}

/// (rows, total of n, total length of v) as a connection sees them.
fn seen(conn: &Connection) -> (i64, i64, i64) {
    conn.query_row(
        "SELECT count(*), coalesce(sum(n), 0), coalesce(sum(length(v)), 0) FROM t",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .expect("reads")
}

/// What a copy of `name` and its WAL in `dir`, without the WAL index, holds once opened: the
/// files as a crash would leave them (recovery rebuilds the index from the WAL, checking every
/// frame's checksum, and stops at the first that does not match).
fn recovered(dir: &Path, name: &str) -> (i64, i64, i64) {
    let (_copy, conn) = crash_copy(dir, name);
    assert_intact(&conn, "recovered");
    seen(&conn)
}

/// A copy of `name` and its WAL in `dir`, without the WAL index, opened (the copy lives as
/// long as the returned directory).
fn crash_copy(dir: &Path, name: &str) -> (tempfile::TempDir, Connection) {
    let copy = tempfile::tempdir().expect("tempdir");
    std::fs::copy(dir.join(name), copy.path().join(name)).expect("copy db");
    let wal = format!("{name}-wal");
    std::fs::copy(dir.join(&wal), copy.path().join(&wal)).expect("copy wal");
    let conn = Connection::open(copy.path().join(name)).expect("recovered");
    (copy, conn)
}

/// `PRAGMA integrity_check` finds nothing wrong through `conn`.
fn assert_intact(conn: &Connection, what: &str) {
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("check");
    assert_eq!(check, "ok", "{what}");
}

/// Commits of every shape SQLite writes (one frame; many; spilled before commit, with pages
/// rewritten over their own frames; rolled back after a spill), checking after each that a
/// reader on the default VFS sees all of it, then that a copy of the files without the WAL
/// index recovers every commit.
fn commits_of_every_shape(sync_full: bool) {
    SEEN.set((0, 0, 0));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("w.db");
    let mut writer = open_through_vfs(&path, sync_full);
    let reader =
        Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("reader");
    let mut expected = (0_i64, 0_i64, 0_i64);
    let mut next = 0_i64;
    for (round, rows) in [1_i64, 1, 30, 300, 2_000, 1, 5_000, 30]
        .into_iter()
        .enumerate()
    {
        let tx = writer.transaction().expect("tx");
        for _ in 0..rows {
            let len = 200 + (next % 700) as usize;
            tx.execute(
                "INSERT INTO t (k, v, n) VALUES (?1, zeroblob(?2), ?3)",
                params![next, len as i64, next % 13],
            )
            .expect("insert");
            expected.0 += 1;
            expected.1 += next % 13;
            expected.2 += len as i64;
            next += 1;
        }
        if round % 3 == 2 {
            // The same rows changed again in the same transaction, after the spill.
            let changed = tx
                .execute(
                    "UPDATE t SET n = n + 1 WHERE k % 7 = 0 AND k >= ?1",
                    [next - rows],
                )
                .expect("update");
            expected.1 += changed as i64;
        }
        tx.commit().expect("commit");
        assert_eq!(
            seen(&reader),
            expected,
            "round {round}: a reader sees the commit whole"
        );
        assert_eq!(
            recovered(dir.path(), "w.db"),
            expected,
            "round {round}: the files as a crash would leave them hold the commit"
        );
        if round == 4 {
            // A spilled transaction rolled back: its frames are never published.
            let tx = writer.transaction().expect("tx");
            for k in 0..3_000_i64 {
                tx.execute(
                    "INSERT INTO t (k, v, n) VALUES (?1, zeroblob(500), 1)",
                    [1_000_000 + k],
                )
                .expect("insert");
            }
            tx.rollback().expect("rollback");
            assert_eq!(
                seen(&reader),
                expected,
                "the rolled-back transaction is not seen"
            );
        }
    }
    assert_intact(&reader, "after every shape");
    let (pages, headers, _) = SEEN.get();
    assert!(pages > 0, "some page was written over its own frame");
    assert!(
        headers > 0,
        "some commit rewrote the checksums after such a page"
    );
    let wal_len = std::fs::metadata(dir.path().join("w.db-wal"))
        .expect("wal")
        .len();
    assert!(
        wal_len > 1_000_000,
        "the commits are in the WAL ({wal_len} bytes)"
    );
    drop(reader);
    drop(writer);
}

#[test]
fn commits_through_the_vfs_are_whole_for_readers_and_recovery() {
    commits_of_every_shape(false);
}

#[test]
fn commits_through_the_vfs_are_whole_with_synchronous_full() {
    commits_of_every_shape(true);
}

#[test]
fn commits_padded_to_a_sector_are_whole() {
    // Without power-safe overwrite, `synchronous = FULL` pads each commit to a sector boundary
    // with copies of its commit frame, written around a sync.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("p.db");
    let uri = format!("file:{}?psow=0", path.display());
    assert!(registered());
    let writer = Connection::open_with_flags_and_vfs(
        &uri,
        OpenFlags::default() | OpenFlags::SQLITE_OPEN_URI,
        VFS_NAME,
    )
    .expect("opens");
    writer
        .execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 0;
             CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB, n INTEGER);",
        )
        .expect("setup");
    let reader =
        Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("reader");
    let mut expected = (0, 0, 0);
    for round in 0..20_i64 {
        let rows = 1 + round * 7;
        let tx = writer.unchecked_transaction().expect("tx");
        for k in 0..rows {
            tx.execute(
                "INSERT INTO t (k, v, n) VALUES (?1, zeroblob(300), 2)",
                [round * 1_000 + k],
            )
            .expect("insert");
        }
        tx.commit().expect("commit");
        expected = (
            expected.0 + rows,
            expected.1 + 2 * rows,
            expected.2 + 300 * rows,
        );
        assert_eq!(seen(&reader), expected);
        assert_eq!(recovered(dir.path(), "p.db"), expected);
    }
}

#[test]
fn a_page_changed_again_after_its_frame_was_spilled_commits_whole() {
    // A row's page changed, spilled to the WAL by a large insert in the same transaction, then
    // changed again: the commit writes the page over its own frame and rewrites the checksums
    // of every frame after it, the last with the commit mark, after the commit frame.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("r.db");
    let writer = open_through_vfs(&path, false);
    writer
        .execute_batch(
            "CREATE TABLE a (k INTEGER PRIMARY KEY, note TEXT);
             INSERT INTO a VALUES (1, 'first');",
        )
        .expect("setup");
    let reader =
        Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("reader");
    for round in 0..5_i64 {
        let tx = writer.unchecked_transaction().expect("tx");
        tx.execute(
            "UPDATE a SET note = ?1 WHERE k = 1",
            [format!("before {round}")],
        )
        .expect("update");
        for k in 0..400_i64 {
            tx.execute(
                "INSERT INTO t (k, v, n) VALUES (?1, zeroblob(700), 1)",
                [round * 1_000 + k],
            )
            .expect("insert");
        }
        let note = format!(
            "after {round} {}",
            "x".repeat(usize::try_from(round).unwrap_or(0) * 50)
        );
        tx.execute("UPDATE a SET note = ?1 WHERE k = 1", [&note])
            .expect("update");
        tx.commit().expect("commit");
        let expected = (
            (round + 1) * 400,
            (round + 1) * 400,
            (round + 1) * 400 * 700,
        );
        assert_eq!(seen(&reader), expected);
        assert_eq!(recovered(dir.path(), "r.db"), expected, "round {round}");
        let (_copy, copied) = crash_copy(dir.path(), "r.db");
        let kept: String = copied
            .query_row("SELECT note FROM a WHERE k = 1", [], |r| r.get(0))
            .expect("note");
        assert_eq!(
            kept, note,
            "round {round}: the last change of the row survives a crash"
        );
    }
}

#[test]
fn a_spill_rolled_back_never_lands_on_another_writers_frames() {
    // Writer A (through the VFS) spills frames of a transaction it then rolls back, into an
    // empty WAL so that the rollback reads nothing back from it; writer B, another connection
    // as another process would be, then commits frames in the same places of the WAL. A's
    // spilled frames must reach the file while A still holds the write lock, never after B's
    // commit, when A's next read would write them over B's frames.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("two.db");
    let a = open_through_vfs(&path, false);
    let b = Connection::open(&path).expect("b");
    b.pragma_update(None, "wal_autocheckpoint", 0)
        .expect("b autocheckpoint");
    let reader =
        Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("reader");
    let mut expected = (0_i64, 0_i64, 0_i64);
    for (round, spilled) in [20_i64, 100, 400, 1_000].into_iter().enumerate() {
        let round = round as i64;
        a.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .expect("truncate");
        a.execute_batch("BEGIN").expect("begin");
        for k in 0..spilled {
            a.execute(
                "INSERT INTO t (k, v, n) VALUES (?1, zeroblob(600), 5)",
                [1_000_000 + round * 10_000 + k],
            )
            .expect("insert");
        }
        a.execute_batch("ROLLBACK").expect("rollback");
        let tx = b.unchecked_transaction().expect("tx");
        for k in 0..300_i64 {
            tx.execute(
                "INSERT INTO t (k, v, n) VALUES (?1, zeroblob(100), 1)",
                [round * 1_000 + k],
            )
            .expect("insert");
        }
        tx.commit().expect("commit");
        expected = (expected.0 + 300, expected.1 + 300, expected.2 + 30_000);
        // A reads B's frames (through its own WAL file, the one that held the spill).
        assert_eq!(
            seen(&a),
            expected,
            "round {round}: the writer through the VFS"
        );
        assert_eq!(seen(&reader), expected, "round {round}: a reader");
        assert_eq!(
            recovered(dir.path(), "two.db"),
            expected,
            "round {round}: recovery"
        );
    }
    drop(a);
    assert_intact(&reader, "after the writer through the VFS closed");
    assert_eq!(
        seen(&reader),
        expected,
        "after the writer through the VFS closed"
    );
}

#[test]
fn small_pages_padded_to_a_sector_commit_whole() {
    // Pages smaller than the 4 KiB sector: without power-safe overwrite, `synchronous = FULL`
    // pads commits with several copies of the commit frame, and the copy that crosses the
    // sector boundary is written in two pieces around a sync; some second pieces are 24 bytes,
    // zeros where a commit mark would be (the end of a leaf of zero-filled values), which must
    // not be taken for a frame's header (`pieces_split_around_a_sync_are_not_taken_for_frames`
    // pins the decision; here SQLite makes them).
    SEEN.set((0, 0, 0));
    for page in [512, 1024, 2048] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.db");
        let uri = format!("file:{}?psow=0", path.display());
        assert!(registered());
        let writer = Connection::open_with_flags_and_vfs(
            &uri,
            OpenFlags::default() | OpenFlags::SQLITE_OPEN_URI,
            VFS_NAME,
        )
        .expect("opens");
        writer
            .execute_batch(&format!(
                "PRAGMA page_size = {page}; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
                 PRAGMA wal_autocheckpoint = 0;
                 CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB, n INTEGER);"
            ))
            .expect("setup");
        let reader =
            Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("reader");
        let mut expected = (0, 0, 0);
        for round in 0..700_i64 {
            let rows = 1 + round % 5;
            let tx = writer.unchecked_transaction().expect("tx");
            for k in 0..rows {
                tx.execute(
                    "INSERT INTO t (k, v, n) VALUES (?1, zeroblob(?2), 0)",
                    params![round * 10 + k, (round % 7) * 60],
                )
                .expect("insert");
            }
            tx.commit().expect("commit");
            expected.0 += rows;
            expected.2 += rows * (round % 7) * 60;
            assert_eq!(seen(&reader), expected, "page {page}, round {round}");
        }
        assert_intact(&reader, &format!("page {page}"));
        assert_eq!(recovered(dir.path(), "s.db"), expected, "page {page}");
    }
    assert!(
        SEEN.get().2 > 0,
        "some padding frame was split into a 24-byte piece"
    );
}
