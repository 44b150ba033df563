//! Throwaway PostgreSQL clusters for tests and examples.
//!
//! A cluster lives in a fresh directory `$TMPDIR/pgs-test-<pid>-<n>-<random>` (data
//! directory `data/`, unix socket and log file next to it). The postmaster is a direct
//! child of the process, started from a dedicated thread that lives as long as the
//! process, with `PR_SET_PDEATHSIG` so that it dies if the process is killed. On a
//! normal exit (including after failed tests) an `atexit` hook stops every cluster
//! still running and deletes its directory. Directories left behind by dead processes
//! are removed when the next cluster starts.
//!
//! When running as root, `initdb` and `postgres` run as the `postgres` user: the
//! credentials are dropped in the child before `exec`.

use std::ffi::CString;
use std::fs;
use std::io;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

use crate::Error;

/// Prefix of every cluster directory created by this module (under the temp dir).
pub const DIR_PREFIX: &str = "pgs-test-";

/// Clusters started by this process and not yet stopped: (postmaster pid, directory).
static LIVE: Mutex<Vec<(i32, PathBuf)>> = Mutex::new(Vec::new());
static ATEXIT: Once = Once::new();
static CLEAN_STALE: Once = Once::new();
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A running throwaway PostgreSQL cluster.
#[derive(Debug)]
pub struct Cluster {
    /// TCP port on 127.0.0.1.
    pub port: u16,
    /// The cluster's directory (data directory is `dir/data`, socket in `dir`).
    pub dir: PathBuf,
    /// Process id of the postmaster.
    pub pid: i32,
    /// Directory of the PostgreSQL binaries used.
    pub bindir: PathBuf,
}

impl Cluster {
    /// Starts a new cluster. Blocking (about a second); safe to call from several
    /// threads at once.
    pub fn start() -> Result<Cluster, Error> {
        ATEXIT.call_once(|| {
            // SAFETY: registering a plain `extern "C" fn` with no captured state.
            unsafe {
                libc::atexit(stop_all_at_exit);
            }
        });
        CLEAN_STALE.call_once(clean_stale_dirs);

        let bindir = find_bindir()?;
        let user = if unsafe { libc::geteuid() } == 0 {
            Some(postgres_user()?)
        } else {
            None
        };
        let dir = make_dir(user)?;
        match start_in(&bindir, &dir, user) {
            Ok((pid, port)) => Ok(Cluster {
                port,
                dir,
                pid,
                bindir,
            }),
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    /// Connection URL of the database `db` in this cluster (user `postgres`, trust auth).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{}", self.port, db)
    }

    /// Stops the server (immediate shutdown) and deletes the directory. Idempotent.
    pub fn stop(&self) {
        let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = live.iter().position(|(pid, _)| *pid == self.pid) {
            let (pid, dir) = live.remove(i);
            drop(live);
            stop_postmaster(pid);
            let _ = fs::remove_dir_all(dir);
        }
    }

    /// Restarts the server on the same data directory and port: a fast shutdown
    /// (every connection is cut, what was committed is kept: the cluster runs with
    /// `synchronous_commit=off`, so an immediate shutdown could lose the last
    /// commits), then a start. Blocking (about a second).
    pub fn restart(&mut self) -> Result<(), Error> {
        self.restart_after(Duration::ZERO)
    }

    /// [`Cluster::restart`], with the server down for `downtime` in between.
    pub fn restart_after(&mut self, downtime: Duration) -> Result<(), Error> {
        remove_live(self.pid);
        // SAFETY: signalling a postmaster we started.
        unsafe {
            libc::kill(self.pid, libc::SIGINT);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while !exited(self.pid) && alive(self.pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        stop_postmaster(self.pid);
        std::thread::sleep(downtime);
        let user = if unsafe { libc::geteuid() } == 0 {
            Some(postgres_user()?)
        } else {
            None
        };
        let pid = spawn_postmaster(&self.bindir, &self.dir, user, self.port)?;
        if let Err(e) = wait_ready(&self.dir, pid) {
            stop_postmaster(pid);
            remove_live(pid);
            return Err(Error::new(format!("{e}\nserver log:\n{}", self.log())));
        }
        self.pid = pid;
        Ok(())
    }

    /// The server log (for diagnostics).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
    }
}

static SHARED: OnceLock<Result<Cluster, String>> = OnceLock::new();

/// The one cluster shared by all tests of this process, started on first use.
/// It is stopped and deleted when the process exits.
pub fn shared_cluster() -> Result<&'static Cluster, Error> {
    SHARED
        .get_or_init(|| Cluster::start().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| Error::new(format!("starting the test cluster failed: {e}")))
}

/// Owns a cluster started by [`embedded_cluster`]; dropping it stops the server and
/// deletes its directory (the process exit does so too if it is leaked).
#[derive(Debug)]
pub struct ClusterGuard {
    /// The cluster.
    pub cluster: Cluster,
}

impl ClusterGuard {
    /// URL of the `postgres` database of the cluster.
    pub fn url(&self) -> String {
        self.cluster.url("postgres")
    }
}

impl Drop for ClusterGuard {
    fn drop(&mut self) {
        self.cluster.stop();
    }
}

/// Starts a private throwaway cluster, for programs (the example) run without
/// `DATABASE_URL`. Returns the guard and the URL of its `postgres` database.
///
/// ```no_run
/// # async fn f() -> Result<(), pgstream_tests::Error> {
/// let (guard, url) = pgstream_tests::embedded_cluster().await?;
/// println!("running on a throwaway PostgreSQL in {}", guard.cluster.dir.display());
/// # Ok(()) }
/// ```
pub async fn embedded_cluster() -> Result<(ClusterGuard, String), Error> {
    let cluster = tokio::task::spawn_blocking(Cluster::start)
        .await
        .map_err(|e| Error::new(format!("cluster start task failed: {e}")))??;
    let url = cluster.url("postgres");
    Ok((ClusterGuard { cluster }, url))
}

// ---------------------------------------------------------------------------------

fn find_bindir() -> Result<PathBuf, Error> {
    let has = |d: &Path| d.join("postgres").is_file() && d.join("initdb").is_file();
    if let Some(d) = std::env::var_os("PG_BINDIR") {
        let d = PathBuf::from(d);
        if has(&d) {
            return Ok(d);
        }
        return Err(Error::new(format!(
            "PG_BINDIR={} does not contain `postgres` and `initdb`",
            d.display()
        )));
    }
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            if has(&d) {
                return Ok(d);
            }
        }
    }
    // Debian/Ubuntu packages keep the server binaries out of PATH.
    let mut candidates: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, d)| has(d))
        .collect();
    candidates.sort();
    if let Some((_, d)) = candidates.pop() {
        return Ok(d);
    }
    Err(Error::new(
        "PostgreSQL server binaries (initdb, postgres) not found: set DATABASE_URL, \
         or PG_BINDIR, or put them on PATH",
    ))
}

#[derive(Clone, Copy, Debug)]
struct PgUser {
    uid: libc::uid_t,
    gid: libc::gid_t,
}

fn postgres_user() -> Result<PgUser, Error> {
    let name = CString::new("postgres").expect("no NUL");
    // SAFETY: getpwnam returns a pointer to static storage or NULL; read immediately.
    // Only called while holding no other getpw* results.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return Err(Error::new(
            "running as root, and PostgreSQL refuses to: a `postgres` user is needed \
             (useradd -r postgres) to run the throwaway cluster",
        ));
    }
    // SAFETY: pw is non-null and points to a valid passwd struct.
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    Ok(PgUser { uid, gid })
}

fn make_dir(user: Option<PgUser>) -> Result<PathBuf, Error> {
    use std::os::unix::fs::PermissionsExt;
    let base = std::env::temp_dir();
    for _ in 0..100 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let r: u32 = rand::random();
        let dir = base.join(format!("{DIR_PREFIX}{}-{n}-{r:08x}", std::process::id()));
        match fs::create_dir(&dir) {
            Ok(()) => {
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
                    .map_err(|e| Error::io("chmod", &dir, e))?;
                if let Some(u) = user {
                    std::os::unix::fs::chown(&dir, Some(u.uid), Some(u.gid))
                        .map_err(|e| Error::io("chown", &dir, e))?;
                }
                return Ok(dir);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io("create", &dir, e)),
        }
    }
    Err(Error::new("could not create a unique cluster directory"))
}

/// Drops to `user` (if any) in the child before exec; optionally asks for SIGQUIT
/// when the parent thread dies (set after the credential change, which clears it).
fn prepare(cmd: &mut Command, user: Option<PgUser>, pdeathsig: bool) {
    // SAFETY: only async-signal-safe libc calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if let Some(u) = user {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(u.gid) != 0
                    || libc::setuid(u.uid) != 0
                {
                    return Err(io::Error::last_os_error());
                }
            }
            if pdeathsig {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT as libc::c_ulong) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // The parent may already be gone (then we were reparented).
                if libc::getppid() == 1 {
                    libc::_exit(1);
                }
            }
            Ok(())
        });
    }
    cmd.env("LC_ALL", "C")
        .env_remove("PGDATA")
        .env_remove("PGPORT")
        .env_remove("PGHOST");
}

fn start_in(bindir: &Path, dir: &Path, user: Option<PgUser>) -> Result<(i32, u16), Error> {
    let data = dir.join("data");
    let mut initdb = Command::new(bindir.join("initdb"));
    initdb
        .arg("-D")
        .arg(&data)
        .args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ])
        .current_dir(dir)
        .stdin(Stdio::null());
    prepare(&mut initdb, user, false);
    let out = initdb
        .output()
        .map_err(|e| Error::io("run initdb in", bindir, e))?;
    if !out.status.success() {
        return Err(Error::new(format!(
            "initdb failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }

    let mut last_err = None;
    for _attempt in 0..5 {
        let port = free_port()?;
        match spawn_postmaster(bindir, dir, user, port) {
            Ok(pid) => match wait_ready(dir, pid) {
                Ok(()) => return Ok((pid, port)),
                Err(e) => {
                    let log = fs::read_to_string(dir.join("postgres.log")).unwrap_or_default();
                    stop_postmaster(pid);
                    remove_live(pid);
                    if log.contains("could not bind") || log.contains("already in use") {
                        last_err = Some(e);
                        continue;
                    }
                    return Err(Error::new(format!("{e}\nserver log:\n{log}")));
                }
            },
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| Error::new("could not start postgres")))
}

fn free_port() -> Result<u16, Error> {
    let l = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::new(format!("cannot bind a TCP port: {e}")))?;
    Ok(l.local_addr()
        .map_err(|e| Error::new(e.to_string()))?
        .port())
}

type SpawnRequest = (Command, mpsc::Sender<io::Result<i32>>);

/// A thread that lives as long as the process spawns every postmaster, so that
/// `PR_SET_PDEATHSIG` (which follows the spawning *thread*) fires only when the
/// process dies, not when a test thread ends.
fn spawner() -> &'static Mutex<mpsc::Sender<SpawnRequest>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("pgs-cluster-spawner".into())
            .spawn(move || {
                let mut children = Vec::new();
                while let Ok((mut cmd, reply)) = rx.recv() {
                    let r = cmd.spawn().map(|c| {
                        let pid = c.id() as i32;
                        children.push(c); // never waited here; stop_postmaster reaps
                        pid
                    });
                    let _ = reply.send(r);
                }
                // Channel closed only at exit: keep the thread (and PDEATHSIG) alive.
                loop {
                    std::thread::park();
                }
            })
            .expect("spawn cluster spawner thread");
        Mutex::new(tx)
    })
}

fn spawn_postmaster(
    bindir: &Path,
    dir: &Path,
    user: Option<PgUser>,
    port: u16,
) -> Result<i32, Error> {
    let log_path = dir.join("postgres.log");
    let log = fs::File::create(&log_path).map_err(|e| Error::io("create", &log_path, e))?;
    if let Some(u) = user {
        let _ = std::os::unix::fs::chown(&log_path, Some(u.uid), Some(u.gid));
    }
    let log2 = log
        .try_clone()
        .map_err(|e| Error::io("dup", &log_path, e))?;
    let mut cmd = Command::new(bindir.join("postgres"));
    cmd.arg("-D")
        .arg(dir.join("data"))
        .arg("-p")
        .arg(port.to_string())
        .arg("-c")
        .arg("listen_addresses=127.0.0.1")
        .arg("-c")
        .arg(format!("unix_socket_directories={}", dir.display()));
    for setting in [
        "fsync=off",
        "synchronous_commit=off",
        "full_page_writes=off",
        "max_connections=200",
        "shared_buffers=128MB",
        "dynamic_shared_memory_type=mmap",
        "TimeZone=UTC",
        "lc_messages=C",
    ] {
        cmd.arg("-c").arg(setting);
    }
    cmd.current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2));
    prepare(&mut cmd, user, true);

    let (tx, rx) = mpsc::channel();
    spawner()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, tx))
        .map_err(|_| Error::new("cluster spawner thread is gone"))?;
    let pid = rx
        .recv()
        .map_err(|_| Error::new("cluster spawner thread is gone"))?
        .map_err(|e| Error::io("run postgres in", bindir, e))?;
    LIVE.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((pid, dir.to_path_buf()));
    Ok(pid)
}

fn remove_live(pid: i32) {
    LIVE.lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|(p, _)| *p != pid);
}

/// Waits until `postmaster.pid` says "ready" (what `pg_ctl -w` does).
fn wait_ready(dir: &Path, pid: i32) -> Result<(), Error> {
    let pidfile = dir.join("data").join("postmaster.pid");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(s) = fs::read_to_string(&pidfile) {
            let lines: Vec<&str> = s.lines().collect();
            if lines.len() >= 8 && lines[0].trim() == pid.to_string() && lines[7].trim() == "ready"
            {
                return Ok(());
            }
        }
        if !alive(pid) || exited(pid) {
            return Err(Error::new("postgres exited during start-up"));
        }
        if Instant::now() > deadline {
            return Err(Error::new("postgres did not become ready within 60 s"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks existence.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Reaps `pid` if it is our exited child; true if it has exited.
fn exited(pid: i32) -> bool {
    let mut status = 0;
    // SAFETY: plain waitpid on a pid, WNOHANG.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    r == pid
}

/// Immediate shutdown (SIGQUIT), then SIGKILL after 5 s; reaps the child.
fn stop_postmaster(pid: i32) {
    // SAFETY: signalling a postmaster we started.
    unsafe {
        libc::kill(pid, libc::SIGQUIT);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut status = 0;
        // SAFETY: plain waitpid, WNOHANG.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid || (r == -1 && !alive(pid)) {
            return;
        }
        if r == -1 {
            // Not our child (stale cluster): poll for disappearance.
            if !alive(pid) {
                return;
            }
        }
        if Instant::now() > deadline {
            // SAFETY: as above.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

extern "C" fn stop_all_at_exit() {
    let live = match LIVE.lock() {
        Ok(mut g) => std::mem::take(&mut *g),
        Err(e) => std::mem::take(&mut *e.into_inner()),
    };
    for (pid, dir) in live {
        stop_postmaster(pid);
        let _ = fs::remove_dir_all(dir);
    }
}

/// Removes `pgs-test-<pid>-…` directories whose owner process is dead, stopping a
/// postmaster still running in them.
fn clean_stale_dirs() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(DIR_PREFIX)) else {
            continue;
        };
        let Some(owner) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        if owner as u32 == std::process::id() || alive(owner) {
            continue;
        }
        let dir = e.path();
        if let Ok(s) = fs::read_to_string(dir.join("data").join("postmaster.pid")) {
            if let Some(pm) = s.lines().next().and_then(|l| l.trim().parse::<i32>().ok()) {
                let comm = fs::read_to_string(format!("/proc/{pm}/comm")).unwrap_or_default();
                if comm.trim() == "postgres" && alive(pm) {
                    stop_postmaster(pm);
                }
            }
        }
        let _ = fs::remove_dir_all(&dir);
    }
}
