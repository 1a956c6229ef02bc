//! Command-line flags, shaped like PocketBase's so existing scripts keep working. Every flag
//! can also come from a `PLINTH_*` environment variable.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "plinth",
    version,
    about = "Plinth: a PocketBase-compatible backend server in one binary."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags accepted before or after any subcommand.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// The data directory (database and files); created when missing.
    #[arg(long, global = true, env = "PLINTH_DIR", default_value = "./pb_data")]
    pub dir: PathBuf,

    /// The database: a PostgreSQL URL (`postgres://user:password@host:5432/database`) to
    /// run on PostgreSQL, where several nodes may share it; unset (or `sqlite`) for the
    /// embedded SQLite database in `--dir`.
    #[arg(long, global = true, env = "PLINTH_DB")]
    pub db: Option<String>,

    /// Connections each node keeps to PostgreSQL (with `--db`).
    #[arg(
        long = "dbPool",
        global = true,
        env = "PLINTH_DB_POOL",
        default_value_t = 16
    )]
    pub db_pool: usize,

    /// Print debug logs.
    #[arg(long, global = true, env = "PLINTH_DEV")]
    pub dev: bool,

    /// TESTS ONLY: hash passwords with the cheapest argon2id parameters (64 KiB, 1 pass), so
    /// a test suite can sign in thousands of times quickly. Such hashes are cheap to crack;
    /// every start with it prints a warning. Never set it for real data.
    #[arg(long = "insecure-test-hashing", global = true,
          env = "PLINTH_INSECURE_TEST_HASHING", hide = true,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub insecure_test_hashing: bool,

    /// Retired: this used to lower the argon2id parameters silently. A value below 10 now
    /// refuses to start (name `--insecure-test-hashing` instead); 10 and up change nothing.
    #[arg(long, global = true, env = "PLINTH_BCRYPT_COST",
          value_parser = clap::value_parser!(u32).range(4..=31), hide = true)]
    pub bcrypt_cost: Option<u32>,

    /// Write a migration file to `--migrationsDir` when a collection changes through the
    /// API (PocketBase's dev workflow).
    #[arg(long, global = true, env = "PLINTH_AUTOMIGRATE", num_args = 0..=1,
          default_missing_value = "true", default_value = "true",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub automigrate: bool,
    /// The name of an environment variable holding a 32-character key: the app settings are
    /// then stored encrypted with it (AES-256-GCM, as PocketBase does).
    #[arg(long = "encryptionEnv", global = true, env = "PLINTH_ENCRYPTION_ENV")]
    pub encryption_env: Option<String>,
    /// The JavaScript hooks folder (`*.pb.js` files); default `pb_hooks` beside the data dir.
    #[arg(long = "hooksDir", global = true, env = "PLINTH_HOOKS_DIR")]
    pub hooks_dir: Option<PathBuf>,
    /// JavaScript runtimes kept (made on first use); requests wait for a free one.
    #[arg(
        long = "hooksPool",
        global = true,
        env = "PLINTH_HOOKS_POOL",
        default_value_t = 15
    )]
    pub hooks_pool: usize,
    /// Restart when a file in the hooks folder changes; also, when on, a hook file that fails
    /// to load is reported and skipped instead of stopping the server.
    #[arg(long = "hooksWatch", global = true, env = "PLINTH_HOOKS_WATCH", num_args = 0..=1,
          default_missing_value = "true", default_value = "true",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub hooks_watch: bool,
    /// How long one hook invocation may work, in seconds (time in app calls not counted),
    /// before it is interrupted.
    #[arg(
        long = "hooksTimeout",
        global = true,
        env = "PLINTH_HOOKS_TIMEOUT",
        default_value_t = 30
    )]
    pub hooks_timeout: u64,
    /// Memory bound of one JavaScript runtime, in MiB.
    #[arg(
        long = "hooksMemoryLimit",
        global = true,
        env = "PLINTH_HOOKS_MEMORY_LIMIT",
        default_value_t = 64
    )]
    pub hooks_memory_limit: usize,
    /// Answer the public folder's `index.html` for a missing path (single-page apps).
    #[arg(long = "indexFallback", global = true, env = "PLINTH_INDEX_FALLBACK", num_args = 0..=1,
          default_missing_value = "true", default_value = "true",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub index_fallback: bool,
    /// The JavaScript migrations folder; default `pb_migrations` beside the data dir.
    #[arg(long = "migrationsDir", global = true, env = "PLINTH_MIGRATIONS_DIR")]
    pub migrations_dir: Option<PathBuf>,
    /// The folder served at `/` (static files); default `pb_public` beside the data dir.
    #[arg(long = "publicDir", global = true, env = "PLINTH_PUBLIC_DIR")]
    pub public_dir: Option<PathBuf>,

    /// How long one database read, or one record write with its rule checks, may take
    /// (waiting for a connection included), in seconds; 0 for no limit. A list past it
    /// answers 400, as in PocketBase.
    #[arg(
        long = "queryTimeout",
        global = true,
        env = "PLINTH_QUERY_TIMEOUT",
        default_value_t = 30
    )]
    pub query_timeout: u64,

    /// The change log's byte budget (record snapshots kept for realtime delivery): past it,
    /// the oldest entries already delivered are pruned.
    #[arg(long = "changeLogMaxBytes", global = true, env = "PLINTH_CHANGE_LOG_MAX_BYTES",
          default_value_t = store_sqlite::DEFAULT_CHANGE_LOG_MAX_BYTES)]
    pub change_log_max_bytes: u64,
}

impl GlobalArgs {
    /// The PostgreSQL URL `--db` names, if the database is PostgreSQL. Anything else but
    /// `sqlite` is refused, so a typo never silently runs on a fresh SQLite file.
    pub fn postgres_url(&self) -> anyhow::Result<Option<&str>> {
        match self.db.as_deref().map(str::trim) {
            None | Some("") | Some("sqlite") => Ok(None),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(Some(url))
            }
            Some(other) => anyhow::bail!(
                "--db must be a postgres:// URL or `sqlite`, not {:?}",
                other.split('@').next_back().unwrap_or_default()
            ),
        }
    }

    /// The hooks folder: `--hooksDir`, else `pb_hooks` beside the data dir.
    pub fn hooks_dir(&self) -> PathBuf {
        self.hooks_dir
            .clone()
            .unwrap_or_else(|| beside(&self.dir, "pb_hooks"))
    }

    /// The public folder: `--publicDir`, else `pb_public` beside the data dir.
    pub fn public_dir(&self) -> PathBuf {
        self.public_dir
            .clone()
            .unwrap_or_else(|| beside(&self.dir, "pb_public"))
    }

    /// The migrations folder: `--migrationsDir`, else `pb_migrations` beside the data dir.
    pub fn migrations_dir(&self) -> PathBuf {
        self.migrations_dir
            .clone()
            .unwrap_or_else(|| beside(&self.dir, "pb_migrations"))
    }

    /// The settings encryption key named by `--encryptionEnv`. A variable that is missing,
    /// empty or not 32 bytes long refuses to start (PocketBase starts unencrypted when it is
    /// missing, which would store the secrets in plain text without a word).
    pub fn settings_key(&self) -> anyhow::Result<Option<server::state::EncryptionKey>> {
        match &self.encryption_env {
            None => Ok(None),
            Some(name) => server::state::EncryptionKey::from_env(name)
                .map(Some)
                .map_err(|error| anyhow::anyhow!("--encryptionEnv={name}: {error}")),
        }
    }

    /// The hook engine's settings from the flags.
    pub fn hooks_config(&self) -> hooks::EngineConfig {
        hooks::EngineConfig {
            hooks_dir: Some(self.hooks_dir()),
            pool_size: self.hooks_pool.max(1),
            timeout: std::time::Duration::from_secs(self.hooks_timeout.max(1)),
            memory_limit: self.hooks_memory_limit.max(8).saturating_mul(1024 * 1024),
            ..hooks::EngineConfig::default()
        }
    }

    /// The hashing cost new passwords get, as the bcrypt-style number the server crate takes
    /// (10: production argon2id; 4: the insecure test parameters). Weakening is never
    /// silent: it needs `--insecure-test-hashing` and prints a warning on every start; a
    /// low `--bcrypt-cost` alone, which once weakened hashes quietly, refuses to start.
    pub fn hash_cost(&self) -> anyhow::Result<u32> {
        if self.insecure_test_hashing {
            eprintln!(
                "WARNING: --insecure-test-hashing (PLINTH_INSECURE_TEST_HASHING) is set: new \
                 password hashes use test-only argon2id parameters that are cheap to crack. \
                 Never use this outside of tests."
            );
            return Ok(4);
        }
        match self.bcrypt_cost {
            Some(cost) if cost < 10 => anyhow::bail!(
                "--bcrypt-cost / PLINTH_BCRYPT_COST={cost} would weaken password hashing and is \
                 no longer honoured; for fast tests set PLINTH_INSECURE_TEST_HASHING=1 (never \
                 in production), otherwise unset it"
            ),
            _ => Ok(10),
        }
    }
}

/// `<data dir>/../name`, as PocketBase places `pb_hooks` and `pb_migrations`.
fn beside(dir: &std::path::Path, name: &str) -> PathBuf {
    let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    absolute
        .parent()
        .map(|p| p.join(name))
        .unwrap_or_else(|| PathBuf::from(name))
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the web server.
    Serve(ServeArgs),
    /// Manage superusers.
    Superuser(SuperuserArgs),
    /// Apply, revert and write JavaScript migrations (`pb_migrations`).
    #[command(long_about = MIGRATE_HELP)]
    Migrate(MigrateArgs),
    /// Convert a PocketBase 0.23+ data directory (SRC) into a new Plinth one (--dir).
    ImportPocketbase(crate::commands::import_pocketbase::ImportPocketBaseArgs),
    /// Copy the SQLite data in --dir into the empty PostgreSQL database --db names.
    MigrateToPostgres,
}

const MIGRATE_HELP: &str = "Apply, revert and write JavaScript migrations (`pb_migrations`).

Arguments:
  up              apply every pending migration (the default)
  down [n]        revert the last n applied migrations (default 1; negative: all)
  create name     write a blank migration file
  collections     write a migration with a snapshot of the current collections
  history-sync    forget applied migrations whose file no longer exists";

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// `up`, `down [n]`, `create <name>`, `collections` or `history-sync`.
    #[arg(allow_negative_numbers = true)]
    pub args: Vec<String>,
    /// Answer yes to the confirmation prompts (for scripts).
    #[arg(short = 'y', long = "yes")]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TCP address to listen on for HTTP (`:8090` for every interface). Default
    /// `127.0.0.1:8090`, or `0.0.0.0:80` when domains are given.
    #[arg(long, env = "PLINTH_HTTP")]
    pub http: Option<String>,

    /// TCP address to listen on for HTTPS with certificates obtained automatically (ACME,
    /// Let's Encrypt) for the domain arguments; plain HTTP then answers the ACME challenges
    /// and redirects everything else to HTTPS. Default `0.0.0.0:443` when domains are given.
    #[arg(long, env = "PLINTH_HTTPS")]
    pub https: Option<String>,

    /// CORS allowed origins, comma-separated (`*`: any; `https://*.example.com` patterns).
    #[arg(
        long,
        env = "PLINTH_ORIGINS",
        value_delimiter = ',',
        default_value = "*"
    )]
    pub origins: Vec<String>,

    /// Use synchronous=FULL (an fsync per commit) instead of NORMAL.
    #[arg(long, env = "PLINTH_SYNC_FULL")]
    pub sync_full: bool,

    /// Largest request body in bytes.
    #[arg(long, env = "PLINTH_BODY_LIMIT", default_value_t = 32 << 20)]
    pub body_limit: usize,

    /// Seconds a connection may take to deliver a complete request head, counted from when
    /// it opens or from the end of its previous response; so it also closes idle keep-alive
    /// connections. PocketBase closes a silent or half-sent head after 60 s.
    #[arg(long, env = "PLINTH_HEADER_TIMEOUT", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout: u64,

    /// Seconds a request body may take to arrive in full, counted from its head.
    #[arg(long, env = "PLINTH_BODY_TIMEOUT", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub body_timeout: u64,

    /// Seconds a response write may wait without moving a byte (the client stopped reading)
    /// before the connection is closed; realtime streams included.
    #[arg(long, env = "PLINTH_WRITE_TIMEOUT", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub write_timeout: u64,

    /// Most connections open at once, realtime streams included; one more is answered 503
    /// and closed. Lowered at start to leave 256 file descriptors free under the open-file
    /// limit (whose soft value is first raised to the hard one).
    #[arg(long, env = "PLINTH_MAX_CONNECTIONS", default_value_t = 20_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: u64,

    /// Most connections open at once from one peer address; one more is answered 429 and
    /// closed (0: no per-address cap). Loopback peers are not counted unless
    /// --cap-loopback-connections is set, so behind a local reverse proxy (all its
    /// connections come from loopback) only --max-connections applies.
    #[arg(long, env = "PLINTH_MAX_CONNECTIONS_PER_IP", default_value_t = 1_000)]
    pub max_connections_per_ip: u64,

    /// Count loopback peers under --max-connections-per-ip too (for a host whose local
    /// processes are untrusted clients rather than a proxy).
    #[arg(long, env = "PLINTH_CAP_LOOPBACK_CONNECTIONS")]
    pub cap_loopback_connections: bool,

    /// Domain names to obtain TLS certificates for (ACME); they turn HTTPS on.
    pub domains: Vec<String>,

    /// A bearer secret that opens GET /api/metrics to a scraper without a superuser account
    /// (`Authorization: Bearer <secret>`); superuser tokens are always accepted.
    #[arg(
        long = "metricsSecret",
        env = "PLINTH_METRICS_SECRET",
        hide_env_values = true
    )]
    pub metrics_secret: Option<String>,
}

#[derive(Debug, Args)]
pub struct SuperuserArgs {
    #[command(subcommand)]
    pub action: SuperuserAction,
}

#[derive(Debug, Subcommand)]
pub enum SuperuserAction {
    /// Create a new superuser.
    Create { email: String, password: String },
    /// Change the password of an existing superuser.
    Update { email: String, password: String },
    /// Create a superuser, or change its password if the email exists.
    Upsert { email: String, password: String },
    /// Delete a superuser (not the last one).
    Delete { email: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_bounds_come_from_flags_and_are_at_least_one() {
        let cli = Cli::try_parse_from([
            "plinth",
            "serve",
            "--header-timeout=5",
            "--body-timeout",
            "7",
            "--max-connections=9",
            "--write-timeout=11",
        ])
        .expect("parses");
        let Command::Serve(serve) = cli.command else {
            panic!("serve expected")
        };
        assert_eq!(
            (
                serve.header_timeout,
                serve.body_timeout,
                serve.max_connections
            ),
            (5, 7, 9)
        );
        for zero in [
            "--header-timeout=0",
            "--body-timeout=0",
            "--max-connections=0",
            "--write-timeout=0",
        ] {
            assert!(
                Cli::try_parse_from(["plinth", "serve", zero]).is_err(),
                "{zero}"
            );
        }
    }

    #[test]
    fn parses_pocketbase_style_lines() {
        let cli = Cli::try_parse_from([
            "plinth",
            "serve",
            "--http=127.0.0.1:9000",
            "--dir=/tmp/x",
            "--automigrate=false",
        ])
        .expect("parses");
        assert_eq!(cli.global.dir, PathBuf::from("/tmp/x"));
        assert_eq!(cli.global.query_timeout, 30, "PocketBase's default");
        let Command::Serve(serve) = cli.command else {
            panic!("serve expected")
        };
        assert_eq!(serve.http.as_deref(), Some("127.0.0.1:9000"));
        assert_eq!(serve.origins, ["*"]);
        assert!(cli.global.index_fallback, "PocketBase's default");
        assert_eq!(
            (
                serve.header_timeout,
                serve.body_timeout,
                serve.max_connections
            ),
            (60, 300, 20_000)
        );
        assert_eq!(serve.max_connections_per_ip, 1_000);
        assert!(!serve.cap_loopback_connections);

        let cli = Cli::try_parse_from([
            "plinth",
            "--dir",
            "d",
            "superuser",
            "upsert",
            "a@b.co",
            "pw",
        ])
        .expect("parses");
        assert!(matches!(
            cli.command,
            Command::Superuser(SuperuserArgs {
                action: SuperuserAction::Upsert { .. }
            })
        ));

        let cli = Cli::try_parse_from(["plinth", "serve", "--queryTimeout=1"]).expect("parses");
        assert_eq!(cli.global.query_timeout, 1);
    }

    #[test]
    fn pocketbase_serve_flags_parse_with_its_defaults() {
        let cli =
            Cli::try_parse_from(["plinth", "serve", "--dir=/srv/app/pb_data"]).expect("parses");
        assert_eq!(cli.global.public_dir(), PathBuf::from("/srv/app/pb_public"));
        assert!(cli.global.index_fallback);
        assert!(cli.global.encryption_env.is_none());
        let cli = Cli::try_parse_from([
            "plinth",
            "serve",
            "example.com",
            "www.example.com",
            "--publicDir=/www",
            "--indexFallback=false",
            "--origins=https://a.example,https://*.b.example",
            "--http=:8090",
            "--https=:8443",
            "--encryptionEnv=PB_KEY",
        ])
        .expect("parses");
        assert_eq!(cli.global.public_dir(), PathBuf::from("/www"));
        assert!(!cli.global.index_fallback);
        assert_eq!(cli.global.encryption_env.as_deref(), Some("PB_KEY"));
        let Command::Serve(serve) = cli.command else {
            panic!("serve expected")
        };
        assert_eq!(serve.origins, ["https://a.example", "https://*.b.example"]);
        assert_eq!(serve.domains, ["example.com", "www.example.com"]);
        assert_eq!(serve.http.as_deref(), Some(":8090"));
        assert_eq!(serve.https.as_deref(), Some(":8443"));
    }

    #[test]
    fn weak_hashing_needs_the_explicit_test_switch() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from([&["plinth"], args, &["serve"]].concat())
                .expect("parses")
                .global
        };
        assert_eq!(parse(&[]).hash_cost().expect("default"), 10);
        assert_eq!(
            parse(&["--bcrypt-cost=12"]).hash_cost().expect("harmless"),
            10
        );
        let refused = parse(&["--bcrypt-cost=4"])
            .hash_cost()
            .expect_err("a low cost alone refuses to start");
        assert!(
            refused.to_string().contains("PLINTH_INSECURE_TEST_HASHING"),
            "{refused}"
        );
        assert_eq!(
            parse(&["--insecure-test-hashing"])
                .hash_cost()
                .expect("opted in"),
            4
        );
    }
}
