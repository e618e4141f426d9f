//! Shared harness for end-to-end tests: a temporary data directory, the
//! real `sluice` binary, a server started on port 0, raw-byte requests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;

pub const BIN: &str = env!("CARGO_BIN_EXE_sluice");

/// A secret known to the test, imported with `key add --secret-file`, so
/// tests can sign tokens of every kind by hand.
pub const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test-secret";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A temporary data directory, removed on drop.
pub struct DataDir {
    pub path: PathBuf,
}

impl DataDir {
    pub fn new(name: &str) -> DataDir {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("sluice-e2e-{}-{n}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create data dir");
        DataDir { path }
    }

    /// Runs a CLI command against this data directory.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("--data-dir")
            .arg(&self.path)
            .args(args)
            .output()
            .expect("run sluice")
    }

    /// Runs a CLI command that must succeed; returns its trimmed stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.cli(args);
        assert!(
            output.status.success(),
            "sluice {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .expect("utf-8 stdout")
            .trim()
            .to_owned()
    }

    /// Every sealed file under the data directory, sorted.
    pub fn sealed_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        walk(&self.path.join("tenants"), &mut files);
        files.retain(|path| {
            path.extension()
                .is_some_and(|ext| ext == "ndjson" || ext == "cbor")
        });
        files.sort();
        files
    }

    pub fn open_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        walk(&self.path.join("tenants"), &mut files);
        files.retain(|path| path.extension().is_some_and(|ext| ext == "open"));
        files
    }

    /// All lines of all sealed NDJSON files.
    pub fn sealed_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for file in self.sealed_files() {
            if file.extension().is_some_and(|ext| ext == "ndjson") {
                let text = std::fs::read_to_string(&file).expect("read sealed file");
                assert!(
                    text.is_empty() || text.ends_with('\n'),
                    "{} ends mid-record",
                    file.display()
                );
                lines.extend(text.lines().map(str::to_owned));
            }
        }
        lines
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// A tenant with a key (of known secret), a token and two streams.
pub struct Setup {
    pub tenant: String,
    pub key: String,
    pub token: String,
    pub json_stream: String,
    pub xml_stream: String,
}

pub fn setup(data: &DataDir, tenant: &str) -> Setup {
    data.ok(&["tenant", "add", tenant]);
    let secret_file = data.path.join(format!("{tenant}.secret"));
    let mut secret = SECRET.to_vec();
    secret.push(b'\n');
    std::fs::write(&secret_file, secret).expect("write secret");
    let key = data.ok(&[
        "key",
        "add",
        "--tenant",
        tenant,
        "--name",
        "writer",
        "--secret-file",
        secret_file.to_str().expect("utf-8 path"),
    ]);
    let token = data.ok(&[
        "token", "generate", "--tenant", tenant, "--key", &key, "--days", "3",
    ]);
    let json_stream = data.ok(&[
        "stream", "add", "--tenant", tenant, "--name", "events", "--format", "json",
    ]);
    let xml_stream = data.ok(&[
        "stream", "add", "--tenant", tenant, "--name", "profiles", "--format", "xml",
    ]);
    Setup {
        tenant: tenant.to_owned(),
        key,
        token,
        json_stream,
        xml_stream,
    }
}

/// A running `sluice serve`.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub logs: Arc<Mutex<Vec<String>>>,
}

impl Server {
    pub fn start(data: &DataDir) -> Server {
        Server::start_with(data, &[], &[])
    }

    /// Starts with extra `serve` flags and environment variables; waits
    /// for the `listening` log line.
    pub fn start_with(data: &DataDir, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut command = Command::new(BIN);
        command
            .arg("--data-dir")
            .arg(&data.path)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
                "--workers",
                "2",
            ])
            .args(args)
            .env("SLUICE_LOG_LEVEL", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn sluice serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        {
            let logs = Arc::clone(&logs);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    let listening = serde_json::from_str::<serde_json::Value>(&line)
                        .ok()
                        .filter(|value| value["event"] == "listening")
                        .and_then(|value| value["addr"].as_str().and_then(|addr| addr.parse().ok()));
                    // Keep the line before announcing the address, so a test
                    // that looks for it right after start finds it.
                    if let Ok(mut logs) = logs.lock() {
                        logs.push(line);
                    }
                    if let Some(addr) = listening {
                        let _ = addr_tx.send(addr);
                    }
                }
            });
        }
        let addr = match addr_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!("server did not start: {:?}", logs.lock().expect("logs"));
            }
        };
        Server { child, addr, logs }
    }

    pub fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        stream
    }

    /// Sends raw bytes on a new connection and reads one response.
    pub fn send(&self, raw: &[u8]) -> Response {
        let mut stream = self.connect();
        stream.write_all(raw).expect("write request");
        read_response(&mut stream).expect("a response")
    }

    /// SIGTERM, then waits for the exit.
    pub fn stop(mut self) -> ExitStatus {
        signal(&self.child, libc::SIGTERM);
        wait_timeout(&mut self.child, Duration::from_secs(30)).expect("server stops after SIGTERM")
    }

    /// SIGKILL, then waits for the exit.
    pub fn kill(mut self) {
        signal(&self.child, libc::SIGKILL);
        let _ = self.child.wait();
    }

    pub fn log_text(&self) -> String {
        self.logs.lock().expect("logs").join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn signal(child: &Child, signal: i32) {
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.id() as i32, signal);
    }
}

pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// One parsed HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `error` field of a JSON error body.
    pub fn error_kind(&self) -> String {
        let value: serde_json::Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("error body is JSON: {:?}", String::from_utf8_lossy(&self.body)));
        assert_eq!(value["status"], self.status, "body status matches");
        assert!(
            value["message"].as_str().is_some_and(|m| !m.is_empty()),
            "has a message"
        );
        value["error"].as_str().expect("error kind").to_owned()
    }
}

/// Reads one response (head and Content-Length body) from a stream. A
/// `100 Continue` interim response is returned as it is.
pub fn read_response(stream: &mut TcpStream) -> std::io::Result<Response> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.push(byte[0]);
    }
    let text = String::from_utf8(buf).expect("ascii head");
    let mut lines = text.split("\r\n");
    let status_line = lines.next().expect("status line");
    assert!(
        status_line.starts_with("HTTP/1.1 "),
        "status line {status_line:?}"
    );
    let status: u16 = status_line[9..12].parse().expect("status code");
    let headers: Vec<(String, String)> = lines
        .filter(|line| !line.is_empty())
        .map(|line| {
            let (name, value) = line.split_once(':').expect("header colon");
            (name.trim().to_owned(), value.trim().to_owned())
        })
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse().expect("content-length"))
        .unwrap_or(0);
    let mut body = vec![0; length];
    stream.read_exact(&mut body)?;
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// True once the peer has closed the connection (EOF within the timeout).
pub fn is_closed(stream: &mut TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut byte = [0u8; 1];
    matches!(stream.read(&mut byte), Ok(0) | Err(_))
}

/// A POST of `body` to a stream, as raw bytes.
pub fn post(stream_id: &str, tenant: &str, token: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut raw = format!(
        "POST /stream/v0/data/{stream_id} HTTP/1.1\r\nHost: https://{tenant}.amperity.com\r\nContent-Type: {content_type}\r\nX-Amperity-Tenant: {tenant}\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    raw
}

/// Signs a token by hand with `secret`, with any header and claims.
pub fn sign(secret: &[u8], header: &str, claims: &str) -> String {
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let signing_input = format!("{}.{}", engine.encode(header), engine.encode(claims));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, signing_input.as_bytes());
    format!("{signing_input}.{}", engine.encode(tag.as_ref()))
}

pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// Polls `condition` every 50 ms until it holds or `timeout` passes.
pub fn eventually(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
