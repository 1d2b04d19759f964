//! The listener both sandboxes serve on: a TCP listener whose connections a handler can cut (the
//! `drop` fault). Once cut, reads and writes fail, so hyper closes the socket without writing the
//! response and the client gets no answer at all.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

pub struct KillableListener(pub TcpListener);

/// The connection a request came in on, as a handler sees it (through `ConnectInfo<Conn>`).
#[derive(Debug, Clone)]
pub struct Conn {
    killed: Arc<AtomicBool>,
}

impl Conn {
    /// Makes the connection fail on its next read or write.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
    }
}

pub struct KillableStream {
    inner: TcpStream,
    killed: Arc<AtomicBool>,
}

impl KillableStream {
    fn cut<T>(&self) -> Option<Poll<io::Result<T>>> {
        self.killed
            .load(Ordering::SeqCst)
            .then(|| Poll::Ready(Err(io::ErrorKind::ConnectionAborted.into())))
    }
}

impl AsyncRead for KillableStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(cut) = this.cut() {
            return cut;
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(cut) = this.cut() {
            return cut;
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(cut) = this.cut() {
            return cut;
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl Listener for KillableListener {
    type Io = KillableStream;
    type Addr = Conn;

    async fn accept(&mut self) -> (KillableStream, Conn) {
        loop {
            match self.0.accept().await {
                Ok((inner, _remote)) => {
                    let killed = Arc::new(AtomicBool::new(false));
                    let stream = KillableStream {
                        inner,
                        killed: killed.clone(),
                    };
                    return (stream, Conn { killed });
                }
                // Out of file descriptors and the like: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Conn> {
        self.0.local_addr()?;
        Ok(Conn {
            killed: Arc::default(),
        })
    }
}

impl Connected<IncomingStream<'_, KillableListener>> for Conn {
    fn connect_info(stream: IncomingStream<'_, KillableListener>) -> Self {
        stream.remote_addr().clone()
    }
}
