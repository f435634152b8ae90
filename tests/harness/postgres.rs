//! A private PostgreSQL server for tests: its own data directory (a copy of
//! a template made once by `initdb`), 127.0.0.1 on a free port, stopped and
//! removed when dropped.
//!
//! The server runs as the `postgres` user (it refuses to run as root, and
//! the tests run as root). Durability is off (`fsync = off`): a test
//! cluster never outlives a crash, and it makes every commit cheap.
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The role that logs in with a password (the superuser `postgres` is
/// trusted on loopback): proves `[postgres] password` reaches the server.
pub const PASSWORD_ROLE: &str = "spoke_pw";
pub const PASSWORD: &str = "s3cret-Pg-test-password";

pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

/// The newest PostgreSQL server installed (`/usr/lib/postgresql/<v>/bin`).
fn server_bin() -> (String, PathBuf) {
    let newest = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse::<u32>().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").exists() && bin.join("postgres").exists())
        .max_by_key(|(v, _)| *v);
    match newest {
        Some((v, bin)) => (v.to_string(), bin),
        None => panic!("PostgreSQL server not installed (no /usr/lib/postgresql/*/bin/initdb): run cargo xtask test, which installs it"),
    }
}

fn as_postgres(program: &Path) -> Command {
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", "postgres", "--"]).arg(program);
    cmd
}

fn run(cmd: &mut Command, what: &str) -> Output {
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(out.status.success(), "{what} failed ({}):\n{}{}", out.status, String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    out
}

fn chown_postgres(path: &Path) {
    run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(path), &format!("chown postgres {}", path.display()));
}

/// The `initdb` result for this version, made once per target dir: in a
/// temporary directory renamed into place, so test processes starting at
/// once never see half a template (the losers throw theirs away).
fn template(version: &str, bin: &Path) -> PathBuf {
    let root = crate::workspace().join("target/postgres-template");
    let done = root.join(version);
    if done.join("PG_VERSION").exists() {
        return done;
    }
    std::fs::create_dir_all(&root).unwrap();
    let scratch = tempfile::Builder::new().prefix(".initdb-").tempdir_in(&root).unwrap().keep();
    std::fs::set_permissions(&scratch, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    chown_postgres(&scratch);
    run(
        as_postgres(&bin.join("initdb")).args(["--no-sync", "-E", "UTF8", "--locale=C.UTF-8", "-U", "postgres", "-A", "trust", "-D"]).arg(&scratch),
        "initdb",
    );
    // Loopback only: the superuser is trusted, every other role gives its
    // password.
    std::fs::write(
        scratch.join("pg_hba.conf"),
        "local all all trust\nhost all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n",
    )
    .unwrap();
    if std::fs::rename(&scratch, &done).is_err() {
        let _ = std::fs::remove_dir_all(&scratch);
        assert!(done.join("PG_VERSION").exists(), "no PostgreSQL template at {}", done.display());
    }
    done
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Cluster {
    /// Start a server. Panics when PostgreSQL is not installed: a store
    /// test that silently skips would prove nothing.
    pub fn start() -> Cluster {
        let (version, bin) = server_bin();
        let template = template(&version, &bin);
        let dir = tempfile::Builder::new().prefix("spoke-pg-").tempdir().unwrap();
        // The server (user postgres) must reach its data and socket dirs.
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let data = dir.path().join("data");
        run(Command::new("cp").arg("-a").arg(&template).arg(&data), "copying the PostgreSQL template");
        std::fs::create_dir(dir.path().join("sock")).unwrap();
        chown_postgres(dir.path());
        let mut cluster = Cluster { dir, bin, port: 0 };
        // A free port can be taken between asking and binding (tests start
        // in parallel): try another.
        let mut last = String::new();
        for _ in 0..5 {
            cluster.port = free_port();
            let options = format!(
                "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=60 -c shared_buffers=16MB",
                cluster.port,
                cluster.dir.path().join("sock").display()
            );
            let out = as_postgres(&cluster.bin.join("pg_ctl"))
                .args(["-w", "-t", "30", "-D"])
                .arg(&data)
                .arg("-l")
                .arg(cluster.dir.path().join("server.log"))
                .args(["-o", &options, "start"])
                .stdin(Stdio::null())
                .output()
                .expect("running pg_ctl");
            if out.status.success() {
                cluster.psql("postgres", &format!("CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD '{PASSWORD}'"));
                return cluster;
            }
            last = format!("{}{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr), std::fs::read_to_string(cluster.dir.path().join("server.log")).unwrap_or_default());
        }
        panic!("PostgreSQL did not start:\n{last}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Run SQL as the superuser in database `db`; its output (unaligned,
    /// tuples only).
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = run(
            Command::new(self.bin.join("psql")).args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "postgres", "-p", &self.port.to_string(), "-d", db, "-c", sql]),
            &format!("psql {sql}"),
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A new database; its URL for the superuser (trusted, no password).
    pub fn database(&self, name: &str) -> String {
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// A new database owned by [`PASSWORD_ROLE`]; its URL, which has no
    /// password: that one is [`PASSWORD`].
    pub fn database_with_password(&self, name: &str) -> String {
        self.psql("postgres", &format!("CREATE DATABASE {name} OWNER {PASSWORD_ROLE}"));
        format!("postgres://{PASSWORD_ROLE}@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.port != 0 {
            let _ = as_postgres(&self.bin.join("pg_ctl"))
                .args(["-w", "-D"])
                .arg(self.dir.path().join("data"))
                .args(["stop", "-m", "immediate"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        // The TempDir goes with the rest of self.
    }
}
