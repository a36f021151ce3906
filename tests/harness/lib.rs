//! Test harness: Strata brokers on loopback ports the OS picks, in-process or as a child
//! process of the `strata` binary (for kill -9 and the command-line contract).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail};
use strata_broker::BrokerConfig;
use tokio_util::sync::CancellationToken;

/// A broker running inside the test process.
pub struct InProcessBroker {
    pub bootstrap: String,
    pub admin: SocketAddr,
    pub data_dir: PathBuf,
    shutdown: CancellationToken,
    runtime: Option<tokio::runtime::Runtime>,
    task: Option<tokio::task::JoinHandle<Result<(), strata_broker::BrokerError>>>,
    _temp: Option<tempfile::TempDir>,
}

impl InProcessBroker {
    /// Starts a broker with default settings on a fresh data directory.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(|_| {})
    }

    /// Starts a broker on a fresh data directory, letting the caller adjust its config.
    pub fn start_with(adjust: impl FnOnce(&mut BrokerConfig)) -> anyhow::Result<Self> {
        let temp = tempfile::tempdir()?;
        let mut broker = Self::start_in(temp.path(), adjust)?;
        broker._temp = Some(temp);
        Ok(broker)
    }

    /// Starts a broker on `data_dir` (which may hold an earlier broker's data).
    pub fn start_in(
        data_dir: &Path,
        adjust: impl FnOnce(&mut BrokerConfig),
    ) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let mut config = BrokerConfig::new(data_dir.to_path_buf());
        config.shutdown_timeout = Duration::from_secs(5);
        adjust(&mut config);
        let kafka = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let bootstrap = kafka.local_addr()?.to_string();
        let listeners = runtime.block_on(async {
            let bind = || tokio::net::TcpListener::bind("127.0.0.1:0");
            anyhow::Ok(strata_broker::Listeners {
                kafka: Some(kafka),
                admin: bind().await?,
                controller: bind().await?,
            })
        })?;
        let admin_addr = listeners.admin.local_addr()?;
        let shutdown = CancellationToken::new();
        let task = runtime.spawn(strata_broker::run(config, listeners, shutdown.clone()));
        let mut broker = Self {
            bootstrap,
            admin: admin_addr,
            data_dir: data_dir.to_path_buf(),
            shutdown,
            runtime: Some(runtime),
            task: Some(task),
            _temp: None,
        };
        if let Err(not_ready) = wait_ready(&broker.admin.to_string()) {
            // A node that stopped on its own says why better than its closed admin port.
            let finished = broker.task.as_ref().is_some_and(|t| t.is_finished());
            if finished && let Err(stopped) = broker.stop_inner() {
                bail!("the broker stopped while starting: {stopped:#}");
            }
            return Err(not_ready);
        }
        Ok(broker)
    }

    /// Performs the ordered shutdown and waits for it.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        if let (Some(runtime), Some(task)) = (self.runtime.take(), self.task.take()) {
            runtime.block_on(task)??;
            runtime.shutdown_timeout(Duration::from_secs(5));
        }
        Ok(())
    }
}

impl Drop for InProcessBroker {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}

/// Waits until the admin port at `admin` answers `/readyz` with 200: the node has joined the
/// metadata quorum, caught up and registered, so a first request does not absorb an election.
pub fn wait_ready(admin: &str) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let answer = http_get(admin, "/readyz");
        if answer.as_ref().is_ok_and(|(status, _)| *status == 200) {
            return Ok(());
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "{admin}/readyz did not turn ready within 60 s; its last answer: {}",
            match answer {
                Ok((status, body)) => format!("{status} {}", body.trim()),
                Err(e) => e.to_string(),
            }
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends a raw HTTP/1.1 `request` (which should say `Connection: close`) and returns the
/// whole response.
pub fn http(address: &str, request: &str) -> std::io::Result<String> {
    let mut stream = std::net::TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(request.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

/// A GET: the status code and body.
pub fn http_get(address: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let response = http(
        address,
        &format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"),
    )?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status code")?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// The `strata` binary built alongside these tests (`cargo build -p strata` first), or
/// `STRATA_BIN` when set.
pub fn strata_bin() -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("STRATA_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/e2e-<hash> → target/<profile>/strata
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("strata"))
        .context("cannot locate the target directory")?;
    if !bin.exists() {
        bail!(
            "{} does not exist: run `cargo build -p strata` before the end-to-end tests",
            bin.display()
        );
    }
    Ok(bin)
}

/// `strata server --kafka-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data-dir DIR`.
pub fn server_command(data_dir: &Path) -> anyhow::Result<Command> {
    let mut command = Command::new(strata_bin()?);
    command
        .args([
            "server",
            "--kafka-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data_dir);
    Ok(command)
}

/// A `strata server` child process.
pub struct BrokerProcess {
    pub child: Child,
    pub bootstrap: String,
    pub admin: String,
    /// Lines the server wrote to stderr after the startup line.
    pub log: mpsc::Receiver<String>,
}

impl BrokerProcess {
    /// Runs [`server_command`] plus `extra` arguments, reads the bound addresses from its
    /// startup line and waits until it is ready.
    pub fn spawn(data_dir: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        Self::start(Self::server(data_dir, extra)?)
    }

    /// Like [`Self::spawn`] for a member of a multi-node quorum, which cannot be ready before
    /// enough of the others run: returns once its listeners are bound.
    pub fn spawn_member(data_dir: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        Self::launch(Self::server(data_dir, extra)?)
    }

    fn server(data_dir: &Path, extra: &[&str]) -> anyhow::Result<Command> {
        let mut command = server_command(data_dir)?;
        command
            .args(extra)
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
        Ok(command)
    }

    /// Starts a prepared `strata` command, reads its startup line and waits until it is ready.
    pub fn start(command: Command) -> anyhow::Result<Self> {
        let broker = Self::launch(command)?;
        wait_ready(&broker.admin)?;
        Ok(broker)
    }

    /// Starts a prepared `strata` command and waits for its startup line.
    fn launch(mut command: Command) -> anyhow::Result<Self> {
        let mut child = command
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child.stderr.take().context("stderr is piped")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut before = Vec::new();
        loop {
            let remaining = deadline.saturating_duration_since(std::time::Instant::now());
            let Ok(line) = rx.recv_timeout(remaining) else {
                // Either silent for too long or gone: say which, with what it said.
                let exited = child.try_wait().ok().flatten();
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "strata server did not log its listening line ({}); its stderr:\n{}",
                    exited.map_or("it had not exited".to_string(), |s| format!("exited: {s}")),
                    before.join("\n")
                );
            };
            if line.contains("strata listening") {
                let bootstrap = field(&line, "kafka").context("startup line has kafka=")?;
                let admin = field(&line, "admin").context("startup line has admin=")?;
                return Ok(Self {
                    child,
                    bootstrap,
                    admin,
                    log: rx,
                });
            }
            before.push(line);
        }
    }

    /// SIGKILL, the crash of the crash tests.
    pub fn kill9(mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// Sends `signal` (`STOP`, `CONT`, ...) to the process this test started, by PID.
    pub fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()?;
        anyhow::ensure!(status.success(), "kill -{signal} failed");
        Ok(())
    }

    /// SIGTERM (to the process this test started, by PID), then waits for the exit.
    pub fn terminate(&mut self) -> anyhow::Result<ExitStatus> {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()?;
        anyhow::ensure!(status.success(), "kill -TERM failed");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "the broker did not stop within 20 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port for a process that must be told its port before it starts (a quorum
/// member, a broker restarted on the address its clients know, an S3 server). A port from
/// bind(0) is in the kernel's ephemeral range, where the next bind(0) or outgoing connection
/// of any test may take it before the child binds it; these come from below that range,
/// where nothing is handed out unasked, and never repeat within this process.
pub fn unused_port() -> u16 {
    const FIRST: u32 = 10_000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    let span = ephemeral_start.saturating_sub(FIRST).max(1_000);
    // Test binaries run one after another, but start each at its own place anyway.
    let base = std::process::id().wrapping_mul(7919) % span;
    loop {
        let step = u32::from(NEXT.fetch_add(1, Ordering::Relaxed));
        let port = u16::try_from(FIRST + (base + step) % span).expect("a port number");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Reads `name=value` from a log line in tracing's default format.
fn field(line: &str, name: &str) -> Option<String> {
    let start = line.find(&format!("{name}="))? + name.len() + 1;
    let rest = &line[start..];
    let end = rest.find(' ').unwrap_or(rest.len());
    Some(rest[..end].trim_matches('"').to_string())
}
