//! A real SurrealDB server for the tests of Perpetuo on `ws://` (the binary from
//! `tests/surreal-server`'s example, built by `cargo test`; `PERPETUO_SURREAL_BIN` overrides it), and a TCP relay in front of it
//! that a test can cut to make the database unreachable.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::helpers::poll;

/// A SurrealDB server on a random loopback port, with its own data folder; stopped when dropped.
pub struct SurrealServer {
    bin: String,
    child: Option<Child>,
    pub addr: SocketAddr,
    data: std::path::PathBuf,
}

pub const USER: &str = "root";
pub const PASS: &str = "root-password-for-tests";

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

impl SurrealServer {
    /// A server on a free port, or `None` (the test is skipped) where no server binary is built.
    pub async fn start(data: &Path) -> Option<Self> {
        let bin = crate::requires::surreal_bin()?;
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut server = Self { bin, child: None, addr, data: data.to_owned() };
        server.start_again().await;
        Some(server)
    }

    /// Starts the server (again) on the same address and data folder.
    pub async fn start_again(&mut self) {
        let child = Command::new(&self.bin)
            .args(["start", "--bind", &self.addr.to_string(), "--user", USER, "--pass", PASS, "--log", "warn"])
            .arg(format!("surrealkv://{}", self.data.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the surreal binary starts");
        self.child = Some(child);
        self.wait_healthy().await;
    }

    /// Stops the server as an operator would (SIGTERM), and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let _ = child.wait();
        }
    }

    pub async fn wait_healthy(&self) {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let url = format!("http://{}/health", self.addr);
        let up = poll(Duration::from_secs(120), || async {
            (client.get(&url).send().await.ok()?.status() == 200).then_some(())
        })
        .await;
        assert!(up.is_some(), "the SurrealDB server did not become healthy");
    }
}

impl Drop for SurrealServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Relays TCP to a target until cut: then every open connection is dropped and new ones are
/// closed at once, until restored.
pub struct CutRelay {
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
    connections: Arc<tokio::sync::Mutex<JoinSet<()>>>,
}

impl CutRelay {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let connections: Arc<tokio::sync::Mutex<JoinSet<()>>> = Arc::default();
        let (flag, set) = (Arc::clone(&cut), Arc::clone(&connections));
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if flag.load(Ordering::SeqCst) {
                    continue;
                }
                set.lock().await.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Self { addr, cut, connections }
    }

    pub async fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.connections.lock().await.abort_all();
    }

    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}
