//! A mail catcher: a real SMTP server on 127.0.0.1 that keeps every message it is sent in memory,
//! for the demo and the tests of alert e-mails. The protocol (EHLO/HELO, MAIL, RCPT, DATA with
//! dot-unstuffing, RSET, NOOP, QUIT and their reply codes) is the `mailin` crate's session; this
//! file is its I/O over tokio and the store of what arrived. No TLS, no authentication: it
//! listens on loopback only.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use mailin::{Action, Handler, Response, SessionBuilder};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// The longest command or data line accepted (RFC 5321 allows 1,000 bytes; data lines in
/// practice are longer, so this is generous).
const MAX_LINE: usize = 64 * 1024;
/// The largest message kept.
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// One message as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// The envelope's sender (`MAIL FROM`).
    pub from: String,
    /// The envelope's recipients (`RCPT TO`).
    pub to: Vec<String>,
    /// The message as sent after `DATA`, dot-unstuffed, CRLF line ends.
    pub data: Vec<u8>,
}

impl Mail {
    /// The whole message as text.
    pub fn raw(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }

    /// The header `name` (case-insensitive), its folded lines joined.
    pub fn header(&self, name: &str) -> Option<String> {
        let raw = self.raw();
        let head = raw.split("\r\n\r\n").next().unwrap_or_default();
        let mut found: Option<String> = None;
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                if let Some(v) = found.as_mut() {
                    v.push_str(line.trim_start_matches(['\r', '\n']));
                }
                continue;
            }
            if found.is_some() {
                break;
            }
            if let Some((n, v)) = line.split_once(':')
                && n.eq_ignore_ascii_case(name)
            {
                found = Some(v.trim().to_string());
            }
        }
        found
    }

    /// The `Subject` header.
    pub fn subject(&self) -> Option<String> {
        self.header("subject")
    }

    /// The body of a one-part text message, decoded from quoted-printable or base64 when it was
    /// sent so.
    pub fn text(&self) -> String {
        let raw = self.raw();
        let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        let encoding = self
            .header("content-transfer-encoding")
            .unwrap_or_default()
            .to_ascii_lowercase();
        match encoding.as_str() {
            "base64" => {
                let compact: String = body.split_whitespace().collect();
                base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_else(|_| body.to_string())
            }
            "quoted-printable" => quoted_printable(body),
            _ => body.to_string(),
        }
    }
}

/// Decodes quoted-printable text (RFC 2045 §6.7): `=XX` bytes and `=` soft line breaks.
fn quoted_printable(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' {
            if b[i + 1..].starts_with(b"\r\n") {
                i += 3;
                continue;
            }
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(byte) = hex {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The catcher, running; clones share it.
#[derive(Clone)]
pub struct MailCatcher {
    addr: SocketAddr,
    received: Arc<Received>,
}

#[derive(Default)]
struct Received {
    mails: Mutex<Vec<Mail>>,
    arrived: Notify,
}

impl MailCatcher {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `smtp://127.0.0.1:PORT`, as an SMTP client takes it.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// Every message received so far, in order.
    pub fn messages(&self) -> Vec<Mail> {
        self.received
            .mails
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }

    /// Waits until `n` messages have arrived, or `timeout` has passed; what has arrived.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Mail> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.received.arrived.notified();
            let mails = self.messages();
            if mails.len() >= n {
                return mails;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return self.messages();
            }
        }
    }
}

/// Binds 127.0.0.1 on a free port and serves SMTP on the current tokio runtime.
pub async fn start() -> std::io::Result<MailCatcher> {
    let listener = TcpListener::bind((IpAddr::from([127, 0, 0, 1]), 0)).await?;
    let addr = listener.local_addr()?;
    let received = Arc::new(Received::default());
    let keep = received.clone();
    tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            tokio::spawn(serve(stream, peer.ip(), keep.clone()));
        }
    });
    Ok(MailCatcher { addr, received })
}

/// What one session collects: the envelope from `data_start`, the lines in between.
struct Collect {
    received: Arc<Received>,
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
}

impl Handler for Collect {
    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.from = from.to_string();
        self.to = to.to_vec();
        self.data.clear();
        mailin::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if self.data.len() + buf.len() > MAX_MESSAGE {
            return Err(std::io::Error::other("the message is too large"));
        }
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let mail = Mail {
            from: std::mem::take(&mut self.from),
            to: std::mem::take(&mut self.to),
            data: std::mem::take(&mut self.data),
        };
        if let Ok(mut mails) = self.received.mails.lock() {
            mails.push(mail);
        }
        self.received.arrived.notify_waiters();
        mailin::response::OK
    }
}

/// One SMTP session: the greeting, then a reply to each line the session answers.
async fn serve(stream: TcpStream, peer: IpAddr, received: Arc<Received>) {
    let handler = Collect {
        received,
        from: String::new(),
        to: Vec::new(),
        data: Vec::new(),
    };
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut session = SessionBuilder::new("rbtx-mail-catcher").build(peer, handler);
    let reply = |r: &Response| r.buffer().unwrap_or_default();
    if write.write_all(&reply(&session.greeting())).await.is_err() {
        return;
    }
    let mut line = Vec::new();
    loop {
        line.clear();
        let mut limited = (&mut read).take(MAX_LINE as u64);
        match limited.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let response = session.process(&line);
        match response.action {
            Action::NoReply => {}
            Action::Reply | Action::UpgradeTls => {
                if write.write_all(&reply(&response)).await.is_err() {
                    return;
                }
            }
            Action::Close => {
                let _ = write.write_all(&reply(&response)).await;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads one reply (its last line has a space after the code).
    async fn reply(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            r.read_line(&mut line).await.expect("a reply line");
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] == b' ' {
                return all;
            }
        }
    }

    #[tokio::test]
    async fn a_session_by_hand_keeps_the_message_dot_unstuffed() {
        let catcher = start().await.expect("catcher");
        let stream = TcpStream::connect(catcher.addr()).await.expect("connect");
        let (r, mut w) = stream.into_split();
        let mut r = BufReader::new(r);
        assert!(reply(&mut r).await.starts_with("220"));
        for (send, code) in [
            ("EHLO test.example\r\n", "250"),
            ("NOOP\r\n", "250"),
            ("MAIL FROM:<a@example.com>\r\n", "250"),
            ("RSET\r\n", "250"),
            ("MAIL FROM:<rbtx@localhost>\r\n", "250"),
            ("RCPT TO:<ops@example.com>\r\n", "250"),
            ("DATA\r\n", "354"),
            (
                "Subject: hi\r\n\r\n..a line that began with a dot\r\nend\r\n.\r\n",
                "250",
            ),
            ("QUIT\r\n", "221"),
        ] {
            w.write_all(send.as_bytes()).await.expect("send");
            let got = reply(&mut r).await;
            assert!(got.starts_with(code), "{send:?} → {got:?}");
        }
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).await.expect("closed");
        let mails = catcher.wait_for(1, Duration::from_secs(5)).await;
        assert_eq!(mails.len(), 1);
        assert_eq!(mails[0].from, "rbtx@localhost");
        assert_eq!(mails[0].to, ["ops@example.com"]);
        assert_eq!(mails[0].subject().as_deref(), Some("hi"));
        assert_eq!(mails[0].text(), ".a line that began with a dot\r\nend\r\n");
    }

    #[test]
    fn quoted_printable_is_decoded() {
        assert_eq!(
            quoted_printable("bl=C3=A5b=C3=A6r=\r\n og =3D"),
            "blåbær og ="
        );
    }
}
