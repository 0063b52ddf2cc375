//! An HTTP CONNECT proxy on loopback, as a corporate proxy tunnels HTTPS: it records the
//! `host:port` of every tunnel it opens.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// A CONNECT proxy running until dropped.
#[derive(Debug)]
pub struct ConnectProxy {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    targets: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl ConnectProxy {
    /// Listens on a free loopback port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        let targets = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&targets);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let recorded = Arc::clone(&recorded);
                tokio::spawn(async move {
                    let mut client = BufReader::new(client);
                    let mut line = String::new();
                    if client.read_line(&mut line).await.is_err() {
                        return;
                    }
                    // The rest of the request head.
                    let mut header = String::new();
                    while client.read_line(&mut header).await.is_ok_and(|n| n > 2) {
                        header.clear();
                    }
                    let target = match line.split_whitespace().collect::<Vec<_>>()[..] {
                        ["CONNECT", target, _] => target.to_owned(),
                        _ => return,
                    };
                    recorded.lock().unwrap().push(target.clone());
                    let Ok(mut upstream) = TcpStream::connect(&target).await else {
                        let _ = client.get_mut().write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                        return;
                    };
                    if client
                        .get_mut()
                        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                        .await
                        .is_ok()
                    {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
            }
        });
        Self { url, targets, task }
    }

    /// The `host:port` of every tunnel asked for, in order.
    pub fn targets(&self) -> Vec<String> {
        self.targets.lock().unwrap().clone()
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
