//! A blocking [`Read`] over byte pieces that arrive on an async channel, so streaming code on a
//! blocking thread (hashing into the store, decoding a slice) can consume a gRPC stream without
//! holding it all in memory.

use std::io::{self, Read};

use bytes::{Buf, Bytes};
use tokio::sync::mpsc;

/// A piece of the stream, or why the stream broke.
pub type Piece = Result<Bytes, String>;

/// Reads pieces in order until the sender side closes (end of stream) or sends an error (which
/// becomes an [`io::ErrorKind::BrokenPipe`] error). Call only from a blocking context.
#[derive(Debug)]
pub struct ChunkReader {
    pieces: mpsc::Receiver<Piece>,
    current: Bytes,
}

impl ChunkReader {
    pub fn new(pieces: mpsc::Receiver<Piece>) -> Self {
        Self {
            pieces,
            current: Bytes::new(),
        }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.pieces.blocking_recv() {
                None => return Ok(0),
                Some(Ok(piece)) => self.current = piece,
                Some(Err(why)) => return Err(io::Error::new(io::ErrorKind::BrokenPipe, why)),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pieces_in_order_then_ends_or_fails() {
        let (tx, rx) = mpsc::channel(4);
        let feeder = std::thread::spawn(move || {
            for piece in [&b"ab"[..], b"", b"cde"] {
                tx.blocking_send(Ok(Bytes::from_static(piece)))
                    .expect("send");
            }
        });
        let mut out = Vec::new();
        ChunkReader::new(rx).read_to_end(&mut out).expect("read");
        feeder.join().expect("feeder");
        assert_eq!(out, b"abcde");

        let (tx, rx) = mpsc::channel(4);
        tx.blocking_send(Ok(Bytes::from_static(b"x")))
            .expect("send");
        tx.blocking_send(Err("holder went away".into()))
            .expect("send");
        let err = ChunkReader::new(rx)
            .read_to_end(&mut Vec::new())
            .expect_err("broken stream");
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        assert!(err.to_string().contains("holder went away"));
    }
}
