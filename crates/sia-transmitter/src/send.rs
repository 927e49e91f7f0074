//! One message to one receiver and its answer, over TCP or UDP: the only code here that touches
//! the network. A connection per message (as most panels do); a receiver that does not answer
//! within the timeout is a failure like one that refuses the connection.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket, lookup_host};

/// How a receiver is reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    #[default]
    Tcp,
    Udp,
}

/// One alarm receiver at the centre.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receiver {
    /// `host:port`.
    pub address: String,
    #[serde(default)]
    pub transport: Transport,
}

impl std::fmt::Display for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = match self.transport {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        };
        write!(f, "{t}://{}", self.address)
    }
}

/// The longest answer read.
const ANSWER_MAX: usize = 1024;

/// Sends `message` to `receiver` and returns its answer (up to the first `\r`), or why there is none.
pub async fn exchange(receiver: &Receiver, message: &[u8], timeout: Duration) -> Result<Vec<u8>, String> {
    match tokio::time::timeout(timeout, exchange_unbounded(receiver, message)).await {
        Ok(result) => result,
        Err(_) => Err(format!("{receiver} did not answer within {} ms", timeout.as_millis())),
    }
}

async fn exchange_unbounded(receiver: &Receiver, message: &[u8]) -> Result<Vec<u8>, String> {
    let address = lookup_host(&receiver.address)
        .await
        .map_err(|e| format!("cannot resolve {receiver}: {e}"))?
        .next()
        .ok_or_else(|| format!("{receiver} resolves to no address"))?;
    match receiver.transport {
        Transport::Tcp => {
            let mut stream =
                TcpStream::connect(address).await.map_err(|e| format!("cannot connect to {receiver}: {e}"))?;
            stream.set_nodelay(true).ok();
            stream.write_all(message).await.map_err(|e| format!("cannot write to {receiver}: {e}"))?;
            let mut answer = Vec::new();
            let mut buf = [0u8; 256];
            loop {
                let n = stream.read(&mut buf).await.map_err(|e| format!("cannot read from {receiver}: {e}"))?;
                if n == 0 {
                    return if answer.is_empty() {
                        Err(format!("{receiver} closed without answering"))
                    } else {
                        Ok(answer)
                    };
                }
                answer.extend_from_slice(&buf[..n]);
                // An answer is `\n ... \r`; the receivers send a lone `\n\r` for what they cannot read.
                if answer.iter().skip(1).any(|&b| b == b'\r') || answer.len() >= ANSWER_MAX {
                    return Ok(answer);
                }
            }
        }
        Transport::Udp => {
            let local = if address.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
            let socket = UdpSocket::bind(local).await.map_err(|e| format!("cannot open a UDP socket: {e}"))?;
            socket.connect(address).await.map_err(|e| format!("cannot reach {receiver}: {e}"))?;
            socket.send(message).await.map_err(|e| format!("cannot send to {receiver}: {e}"))?;
            let mut buf = vec![0u8; ANSWER_MAX];
            let n = socket.recv(&mut buf).await.map_err(|e| format!("no answer from {receiver}: {e}"))?;
            buf.truncate(n);
            Ok(buf)
        }
    }
}
