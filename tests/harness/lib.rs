//! Test harness: Strata brokers on loopback ports the OS picks, in-process or as a child
//! process of the `strata` binary (for kill -9 and the command-line contract).

use std::io::{BufRead, BufReader};
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
        let broker = Self {
            bootstrap,
            admin: admin_addr,
            data_dir: data_dir.to_path_buf(),
            shutdown,
            runtime: Some(runtime),
            task: Some(task),
            _temp: None,
        };
        wait_for_port(&broker.bootstrap)?;
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

/// Waits until something accepts TCP connections at `addr`.
pub fn wait_for_port(addr: &str) -> anyhow::Result<()> {
    for _ in 0..200 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    bail!("nothing listens on {addr}")
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
    /// Runs [`server_command`] plus `extra` arguments, and reads the bound addresses from its
    /// startup line.
    pub fn spawn(data_dir: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        let mut command = server_command(data_dir)?;
        command
            .args(extra)
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
        Self::start(command)
    }

    /// Starts a prepared `strata` command and waits for its startup line.
    pub fn start(mut command: Command) -> anyhow::Result<Self> {
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
                    exited.map_or("still running after 30 s".to_string(), |s| format!(
                        "exited: {s}"
                    )),
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
/// of any test may take it before the child binds it; these come from below that range
/// (Linux's starts at 32768), where nothing is handed out unasked, and never repeat within
/// this process.
pub fn unused_port() -> u16 {
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // Test binaries run one after another, but start each at its own place anyway.
    let base = std::process::id().wrapping_mul(7919) % SPAN;
    loop {
        let step = u32::from(NEXT.fetch_add(1, Ordering::Relaxed));
        let port = u16::try_from(FIRST + (base + step) % SPAN).expect("below 32000");
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
