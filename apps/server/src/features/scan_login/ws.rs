//! The server side of a login page's WebSocket (RFC 6455), as lean as an idle socket can be: the socket sends text
//! frames, pings and a close; of what the client sends it only answers pings, notices a close, and counts frames.
//!
//! Why not a general WebSocket library: an idle login page should cost next to nothing, and a general library keeps
//! a read buffer, a write buffer and its codec's state per socket for the socket's whole life. Here the socket's
//! only state between frames is the connection itself; bytes are read into a stack buffer when the kernel says
//! there are some, and a frame cut across reads (rare: a page sends pongs of a few bytes) waits in a buffer that
//! exists only until the rest arrives.

use std::io::ErrorKind;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// The largest frame payload a client may send (a page sends pongs of at most 125 bytes).
pub const MAX_PAYLOAD: usize = 4096;

/// Close codes this socket sends (RFC 6455 §7.4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Close {
    /// 1000: the scene reached its final state.
    Normal = 1000,
    /// 1001: this instance is stopping, or the client is gone.
    Away = 1001,
    /// 1002: the client broke the protocol (an unmasked frame, a fragmented ping, a bad length).
    Protocol = 1002,
    /// 1008: too many frames (a flood).
    Policy = 1008,
    /// 1009: a frame over [`MAX_PAYLOAD`].
    TooBig = 1009,
    /// 1011: the server could not read the scene.
    Error = 1011,
    /// 1012: the event hub is gone (restarting).
    Restart = 1012,
}

/// One complete frame from the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A ping, to answer with a pong carrying the same payload.
    Ping(Vec<u8>),
    /// A close (the code, if any).
    Close(Option<u16>),
    /// Anything else (pong, text, binary, continuation): counted, not kept.
    Other,
}

/// What reading found.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    /// Complete frames (possibly none: the rest of a frame is still on its way).
    Frames(Vec<Frame>),
    /// The client closed the connection.
    Eof,
    /// The client broke the protocol: close with this code.
    Invalid(Close),
}

/// Parses one client frame at the start of `buf`: `Ok(None)` when incomplete, else the frame and its length.
pub fn parse(buf: &[u8]) -> Result<Option<(Frame, usize)>, Close> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    let (fin, opcode, masked) = (b0 & 0x80 != 0, b0 & 0x0f, b1 & 0x80 != 0);
    if b0 & 0x70 != 0 || !masked {
        // No extension was negotiated (reserved bits), and clients must mask (§5.1).
        return Err(Close::Protocol);
    }
    let (len, mut at) = match b1 & 0x7f {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => (u64::from_be_bytes(b.try_into().map_err(|_| Close::Protocol)?), 10),
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    let control = opcode & 0x08 != 0;
    if control && (!fin || len > 125) {
        return Err(Close::Protocol);
    }
    if !matches!(opcode, 0x0..=0x2 | 0x8..=0xa) {
        return Err(Close::Protocol);
    }
    let len = usize::try_from(len).map_err(|_| Close::TooBig)?;
    if len > MAX_PAYLOAD {
        return Err(Close::TooBig);
    }
    let Some(mask) = buf.get(at..at + 4) else {
        return Ok(None);
    };
    let mask = [mask[0], mask[1], mask[2], mask[3]];
    at += 4;
    let Some(payload) = buf.get(at..at + len) else {
        return Ok(None);
    };
    let unmask = || -> Vec<u8> { payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]).collect() };
    let frame = match opcode {
        0x9 => Frame::Ping(unmask()),
        0x8 => {
            let p = unmask();
            match p.len() {
                0 => Frame::Close(None),
                1 => return Err(Close::Protocol),
                _ => Frame::Close(Some(u16::from_be_bytes([p[0], p[1]]))),
            }
        }
        _ => Frame::Other,
    };
    Ok(Some((frame, at + len)))
}

/// Reads what the kernel has (without waiting) and parses the complete frames; an incomplete one stays in
/// `pending`, which is freed once empty.
pub fn read(io: &TcpStream, pending: &mut Vec<u8>) -> Read {
    let mut chunk = [0u8; 512];
    loop {
        match io.try_read(&mut chunk) {
            Ok(0) => return Read::Eof,
            Ok(n) => {
                pending.extend_from_slice(&chunk[..n]);
                if pending.len() > MAX_PAYLOAD + 14 + chunk.len() {
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return Read::Eof,
        }
    }
    let mut frames = Vec::new();
    let mut at = 0;
    loop {
        match parse(&pending[at..]) {
            Ok(Some((frame, used))) => {
                frames.push(frame);
                at += used;
            }
            Ok(None) => break,
            Err(code) => return Read::Invalid(code),
        }
    }
    pending.drain(..at);
    if pending.is_empty() {
        *pending = Vec::new();
    }
    Read::Frames(frames)
}

/// An unmasked server frame: FIN, `opcode`, `payload`.
pub fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 4);
    out.push(0x80 | opcode);
    match payload.len() {
        n @ 0..=125 => out.push(n as u8),
        n @ 126..=0xffff => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

/// Sends a text frame.
pub async fn send_text(io: &mut TcpStream, text: &str) -> std::io::Result<()> {
    io.write_all(&frame(0x1, text.as_bytes())).await
}

/// Sends a ping (empty payload).
pub async fn send_ping(io: &mut TcpStream) -> std::io::Result<()> {
    io.write_all(&[0x89, 0x00]).await
}

/// Answers a ping.
pub async fn send_pong(io: &mut TcpStream, payload: &[u8]) -> std::io::Result<()> {
    io.write_all(&frame(0xa, payload)).await
}

/// Sends a close frame with `code` and shuts the connection's sending side.
pub async fn close(io: &mut TcpStream, code: u16) {
    let _ = io.write_all(&frame(0x8, &code.to_be_bytes())).await;
    let _ = io.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(b0: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let mut out = vec![b0];
        match payload.len() {
            n @ 0..=125 => out.push(0x80 | n as u8),
            n => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    #[test]
    fn client_frames_are_parsed_whole_or_not_at_all() {
        let ping = masked(0x89, b"hi");
        assert_eq!(parse(&ping), Ok(Some((Frame::Ping(b"hi".to_vec()), ping.len()))));
        for cut in 0..ping.len() {
            assert_eq!(parse(&ping[..cut]), Ok(None), "cut at {cut}");
        }
        let close = masked(0x88, &1000u16.to_be_bytes());
        assert_eq!(parse(&close), Ok(Some((Frame::Close(Some(1000)), close.len()))));
        assert_eq!(parse(&masked(0x88, b"")).unwrap().unwrap().0, Frame::Close(None));
        let text = masked(0x81, &[b'x'; 300]);
        assert_eq!(parse(&text), Ok(Some((Frame::Other, text.len()))));
        assert_eq!(parse(&masked(0x8a, b"")).unwrap().unwrap().0, Frame::Other);
    }

    #[test]
    fn protocol_violations_are_refused() {
        // Unmasked, a reserved bit, an unknown opcode, a fragmented or long ping, a one-byte close, too big.
        assert_eq!(parse(&[0x89, 0x00]), Err(Close::Protocol));
        assert_eq!(parse(&masked(0xc9, b"")), Err(Close::Protocol));
        assert_eq!(parse(&masked(0x83, b"")), Err(Close::Protocol));
        assert_eq!(parse(&masked(0x09, b"")), Err(Close::Protocol));
        assert_eq!(parse(&masked(0x89, &[0; 126])), Err(Close::Protocol));
        assert_eq!(parse(&masked(0x88, b"x")), Err(Close::Protocol));
        assert_eq!(parse(&masked(0x82, &[0; MAX_PAYLOAD + 1])), Err(Close::TooBig));
        let mut huge = vec![0x82, 0x80 | 127];
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(parse(&huge), Err(Close::TooBig));
    }

    #[test]
    fn server_frames_use_the_shortest_length() {
        assert_eq!(frame(0x1, b"ok"), vec![0x81, 2, b'o', b'k']);
        let long = frame(0x1, &[b'a'; 300]);
        assert_eq!(&long[..4], &[0x81, 126, 0x01, 0x2c]);
        assert_eq!(long.len(), 304);
    }
}
