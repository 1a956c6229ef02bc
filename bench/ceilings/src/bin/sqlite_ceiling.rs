//! The storage ceiling: raw SQLite (the C library through rusqlite, as Plinth uses it) on a
//! table shaped like the benchmark's `posts`, in WAL mode with `synchronous=NORMAL`. Prints one
//! JSON object with operations per second for each measurement:
//!
//! - `insert_txn`: one single-row INSERT per transaction (autocommit);
//! - `select_pk`: SELECT * by primary key, random ids;
//! - `update_txn`: one single-row UPDATE by primary key per transaction;
//! - `list_page`: the `list` workload's page query (filter AND rule, ORDER BY score DESC LIMIT 20);
//! - `list_page_count`: the page query plus the COUNT(*) of all matches that `totalItems` needs.
//!
//! usage: sqlite-ceiling DIR [ROWS] [SECONDS] [REPEAT]

use rusqlite::{Connection, params};
use std::time::{Duration, Instant};

const BODY: &str = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor \
incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud.";
const NOW: &str = "2025-01-01 00:00:00.000Z";
const WHERE: &str = "score > 500 AND published = 1 AND (published = 1 OR author = ?1)";

/// A small deterministic generator, so runs are repeatable without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn id(&mut self) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        (0..15)
            .map(|_| ALPHABET[self.below(36) as usize] as char)
            .collect()
    }
}

/// Calls `f` in batches of 100 for about `seconds`; returns calls per second.
fn rate(seconds: f64, mut f: impl FnMut() -> rusqlite::Result<()>) -> rusqlite::Result<f64> {
    let start = Instant::now();
    let limit = Duration::from_secs_f64(seconds);
    let mut n = 0u64;
    while start.elapsed() < limit {
        for _ in 0..100 {
            f()?;
        }
        n += 100;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .ok_or("usage: sqlite-ceiling DIR [ROWS] [SECONDS] [REPEAT]")?;
    let rows: u64 = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10_000);
    let seconds: f64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(3.0);
    let repeat: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(3)
        .max(1);

    std::fs::create_dir_all(&dir)?;
    let path = std::path::Path::new(&dir).join("ceiling.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let db = Connection::open(&path)?;
    db.pragma_update(None, "journal_mode", "WAL")?;
    db.pragma_update(None, "synchronous", "NORMAL")?;
    db.execute_batch(
        "CREATE TABLE posts (id TEXT PRIMARY KEY NOT NULL, title TEXT, body TEXT, score NUMERIC,
                             published BOOLEAN, author TEXT, created TEXT, updated TEXT);
         CREATE INDEX idx_posts_score ON posts (score);",
    )?;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let authors = [rng.id(), rng.id()];
    let mut ids = Vec::with_capacity(rows as usize);
    {
        let tx = db.unchecked_transaction()?;
        let mut ins = tx.prepare("INSERT INTO posts VALUES (?1,?2,?3,?4,?5,?6,?7,?8)")?;
        for i in 0..rows {
            let id = rng.id();
            ins.execute(params![
                id,
                format!("post {i}"),
                BODY,
                rng.below(1001) as i64,
                rng.below(2) == 1,
                authors[(i % 2) as usize],
                NOW,
                NOW
            ])?;
            ids.push(id);
        }
        drop(ins);
        tx.commit()?;
    }

    let mut out = Vec::new();
    // Reads first, while the table has exactly `rows` rows.
    let mut select = db.prepare_cached("SELECT * FROM posts WHERE id = ?1")?;
    let runs: Vec<f64> = (0..repeat)
        .map(|_| {
            rate(seconds, || {
                let id = &ids[rng.below(ids.len() as u64) as usize];
                let mut q = select.query(params![id])?;
                let row = q.next()?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
                let _: String = row.get(1)?;
                Ok(())
            })
        })
        .collect::<rusqlite::Result<_>>()?;
    out.push(("select_pk", runs));
    drop(select);

    let page_sql = format!("SELECT * FROM posts WHERE {WHERE} ORDER BY score DESC LIMIT 20");
    let count_sql = format!("SELECT COUNT(*) FROM posts WHERE {WHERE}");
    for (name, with_count) in [("list_page", false), ("list_page_count", true)] {
        let mut page = db.prepare_cached(&page_sql)?;
        let mut count = db.prepare_cached(&count_sql)?;
        let runs: Vec<f64> = (0..repeat)
            .map(|_| {
                rate(seconds / 3.0, || {
                    let mut q = page.query(params![authors[0]])?;
                    while let Some(row) = q.next()? {
                        let _: String = row.get(0)?;
                    }
                    if with_count {
                        let _: i64 = count.query_row(params![authors[0]], |r| r.get(0))?;
                    }
                    Ok(())
                })
            })
            .collect::<rusqlite::Result<_>>()?;
        out.push((name, runs));
    }

    let mut update =
        db.prepare_cached("UPDATE posts SET title = ?1, updated = ?2 WHERE id = ?3")?;
    let runs: Vec<f64> = (0..repeat)
        .map(|_| {
            rate(seconds, || {
                let id = &ids[rng.below(ids.len() as u64) as usize];
                update.execute(params!["updated title", NOW, id])?;
                Ok(())
            })
        })
        .collect::<rusqlite::Result<_>>()?;
    out.push(("update_txn", runs));
    drop(update);

    let mut insert = db.prepare_cached("INSERT INTO posts VALUES (?1,?2,?3,?4,?5,?6,?7,?8)")?;
    let mut seq = 0u64;
    let runs: Vec<f64> = (0..repeat)
        .map(|_| {
            rate(seconds, || {
                seq += 1;
                insert.execute(params![
                    format!("n{seq:014}"),
                    "new post",
                    BODY,
                    42,
                    false,
                    authors[0],
                    NOW,
                    NOW
                ])?;
                Ok(())
            })
        })
        .collect::<rusqlite::Result<_>>()?;
    out.push(("insert_txn", runs));
    drop(insert);

    let version: String = db.query_row("SELECT sqlite_version()", [], |r| r.get(0))?;
    let fields: Vec<String> = out
        .into_iter()
        .map(|(name, runs)| {
            let list: Vec<String> = runs.iter().map(|r| format!("{r:.0}")).collect();
            format!(
                "\"{name}\":{{\"per_s\":{:.0},\"runs\":[{}]}}",
                median(runs.clone()),
                list.join(",")
            )
        })
        .collect();
    println!(
        "{{\"sqlite_version\":\"{version}\",\"rows\":{rows},\"seconds\":{seconds},\"repeat\":{repeat},{}}}",
        fields.join(",")
    );
    drop(db);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    Ok(())
}
