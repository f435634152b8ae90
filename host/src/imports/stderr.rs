//! A plugin's stderr for one call, kept in memory: the last [`KEEP`] bytes,
//! so a crash report can carry the guest's own error (a Rust panic message,
//! a Python traceback's last lines) however much was written before it.
//! Writing never fails: a guest that prints a lot loses its oldest output,
//! not its call (wasmtime's `MemoryOutputPipe` traps once full).
use bytes::Bytes;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// Bytes of stderr kept per call.
pub const KEEP: usize = 4 * 1024;

#[derive(Debug, Default)]
struct Tail {
    bytes: VecDeque<u8>,
    dropped: usize,
}

#[derive(Debug, Clone, Default)]
pub struct TailPipe(Arc<Mutex<Tail>>);

impl TailPipe {
    fn push(&self, data: &[u8]) {
        let mut t = self.0.lock().unwrap();
        t.bytes.extend(data);
        let over = t.bytes.len().saturating_sub(KEEP);
        if over > 0 {
            t.bytes.drain(..over);
            t.dropped += over;
        }
    }

    /// Forget what was kept: a reused instance's next call reports only
    /// its own stderr.
    pub fn clear(&self) {
        *self.0.lock().unwrap() = Tail::default();
    }

    /// The kept text, prefixed with a note when older output was dropped.
    pub fn text(&self) -> String {
        let t = self.0.lock().unwrap();
        let (a, b) = t.bytes.as_slices();
        let text = String::from_utf8_lossy(&[a, b].concat()).trim().to_string();
        if t.dropped > 0 && !text.is_empty() {
            format!("[{} earlier bytes of stderr not kept]\n{text}", t.dropped)
        } else {
            text
        }
    }
}

impl IsTerminal for TailPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for TailPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for TailPipe {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.push(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }
    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for TailPipe {
    async fn ready(&mut self) {}
}

impl AsyncWrite for TailPipe {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_bytes_and_says_what_it_dropped() {
        let mut p = TailPipe::default();
        OutputStream::write(&mut p, Bytes::from(vec![b'x'; KEEP])).unwrap();
        OutputStream::write(&mut p, Bytes::from_static(b"\nthe real error")).unwrap();
        let text = p.text();
        assert!(text.ends_with("the real error"), "{text}");
        assert!(text.starts_with(&format!("[{} earlier bytes of stderr not kept]", "\nthe real error".len())), "{text}");
        assert!(TailPipe::default().text().is_empty());
    }
}
