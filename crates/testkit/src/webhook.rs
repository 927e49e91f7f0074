//! A minimal HTTP/1.1 receiver for webhooks: records each request's head and body and answers
//! with the statuses a test gives it (a 500, then a 200, ...).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the receiver got: each request's head and body.
pub type Received = Arc<Mutex<Vec<(String, String)>>>;

/// A minimal HTTP/1.1 receiver on `listener`: records each request and answers with the next
/// status of `answers` (the last one for ever after).
pub fn webhook_receiver(listener: TcpListener, answers: Vec<u16>) -> Received {
    let received: Received = Arc::default();
    let seen = received.clone();
    let answers = Arc::new(Mutex::new(answers));
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            let (seen, answers) = (seen.clone(), answers.clone());
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                loop {
                    let mut chunk = [0u8; 4096];
                    let Ok(n) = socket.read(&mut chunk).await else { return };
                    if n == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                    let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
                    let head = String::from_utf8_lossy(&buffer[..end]).to_string();
                    let length = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0usize);
                    if buffer.len() < end + 4 + length {
                        continue;
                    }
                    let body = String::from_utf8_lossy(&buffer[end + 4..end + 4 + length]).to_string();
                    buffer.drain(..end + 4 + length);
                    let status = {
                        let mut answers = answers.lock().unwrap();
                        if answers.len() > 1 { answers.remove(0) } else { answers[0] }
                    };
                    seen.lock().unwrap().push((head, body));
                    let reply = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n");
                    if socket.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    received
}

/// What `received` holds once it has `n` requests, or what it has after `within`.
pub async fn wait_for(received: &Received, n: usize, within: Duration) -> Vec<(String, String)> {
    let deadline = Instant::now() + within;
    loop {
        let got = received.lock().unwrap().clone();
        if got.len() >= n || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
