//! A real SMTP server for the mail tests: it listens on a loopback port, speaks the SMTP
//! dialogue (EHLO, AUTH PLAIN, MAIL, RCPT, DATA, QUIT) over TCP, and keeps every delivered
//! message so tests can read tokens and codes out of them.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One delivered message.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// The raw DATA section, dot-unstuffed.
    pub raw: String,
    /// `user:password` when the client authenticated.
    pub auth: Option<String>,
}

impl Mail {
    /// The message text with quoted-printable and base64 parts decoded, for searching.
    pub fn text(&self) -> String {
        let mut out = decode_quoted_printable(&self.raw);
        let lines: Vec<&str> = self.raw.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            if lines[i]
                .to_ascii_lowercase()
                .starts_with("content-transfer-encoding: base64")
            {
                while i < lines.len() && !lines[i].trim().is_empty() {
                    i += 1;
                }
                let mut block = String::new();
                while i < lines.len() && !lines[i].trim().is_empty() && !lines[i].starts_with("--")
                {
                    block.push_str(lines[i].trim());
                    i += 1;
                }
                out.push('\n');
                out.push_str(&String::from_utf8_lossy(&decode_base64(&block)));
            }
            i += 1;
        }
        out
    }

    /// The first JWT in the message.
    pub fn token(&self) -> String {
        let text = self.text();
        let start = text
            .find("eyJ")
            .unwrap_or_else(|| panic!("no token in {text}"));
        text[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
            .collect()
    }

    /// The first run of exactly `length` digits after "password is".
    pub fn code(&self, length: usize) -> String {
        let text = self.text();
        let start = text
            .find("password is")
            .unwrap_or_else(|| panic!("no code in {text}"));
        let rest = &text[start..];
        let digits: String = rest
            .chars()
            .skip_while(|c| !c.is_ascii_digit())
            .take_while(char::is_ascii_digit)
            .collect();
        assert_eq!(digits.len(), length, "code in {text}");
        digits
    }

    pub fn subject(&self) -> String {
        self.raw
            .lines()
            .find_map(|l| l.strip_prefix("Subject: "))
            .unwrap_or("")
            .to_owned()
    }
}

pub struct SmtpSink {
    pub port: u16,
    messages: Arc<Mutex<Vec<Mail>>>,
}

impl SmtpSink {
    pub fn start() -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binds");
        let port = listener.local_addr().expect("addr").port();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let shared = messages.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = shared.clone();
                std::thread::spawn(move || {
                    let _ = session(stream, &shared);
                });
            }
        });
        SmtpSink { port, messages }
    }

    pub fn messages(&self) -> Vec<Mail> {
        self.messages.lock().expect("lock").clone()
    }

    /// Waits (up to 15 s) for the `index`-th message (0-based) sent to `to`.
    pub async fn wait_for(&self, to: &str, index: usize) -> Mail {
        for _ in 0..300 {
            let found: Vec<Mail> = self
                .messages()
                .into_iter()
                .filter(|m| m.to.iter().any(|t| t == to))
                .collect();
            if let Some(mail) = found.get(index) {
                return mail.clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no message #{index} to {to}; got {:?}", self.messages());
    }

    pub fn count_to(&self, to: &str) -> usize {
        self.messages()
            .iter()
            .filter(|m| m.to.iter().any(|t| t == to))
            .count()
    }
}

fn session(stream: TcpStream, messages: &Mutex<Vec<Mail>>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    writer.write_all(b"220 sink.test ESMTP ready\r\n")?;
    let mut from = String::new();
    let mut to = Vec::new();
    let mut auth = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let upper = command.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            writer.write_all(
                b"250-sink.test\r\n250-8BITMIME\r\n250-AUTH PLAIN\r\n250 SMTPUTF8\r\n",
            )?;
        } else if upper.starts_with("HELO") {
            writer.write_all(b"250 sink.test\r\n")?;
        } else if upper.starts_with("AUTH PLAIN") {
            let encoded = command.get(11..).unwrap_or("").trim();
            let decoded = decode_base64(encoded);
            let parts: Vec<String> = decoded
                .split(|b| *b == 0)
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect();
            auth = Some(format!(
                "{}:{}",
                parts.get(1).cloned().unwrap_or_default(),
                parts.get(2).cloned().unwrap_or_default()
            ));
            writer.write_all(b"235 2.7.0 Authentication successful\r\n")?;
        } else if upper.starts_with("MAIL FROM:") {
            from = address(&command);
            to.clear();
            writer.write_all(b"250 OK\r\n")?;
        } else if upper.starts_with("RCPT TO:") {
            to.push(address(&command));
            writer.write_all(b"250 OK\r\n")?;
        } else if upper == "DATA" {
            writer.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")?;
            let mut raw = String::new();
            loop {
                let mut data_line = String::new();
                if reader.read_line(&mut data_line)? == 0 {
                    return Ok(());
                }
                if data_line == ".\r\n" || data_line == ".\n" {
                    break;
                }
                let unstuffed = data_line.strip_prefix('.').unwrap_or(&data_line);
                raw.push_str(unstuffed);
            }
            messages.lock().expect("lock").push(Mail {
                from: from.clone(),
                to: to.clone(),
                raw,
                auth: auth.clone(),
            });
            writer.write_all(b"250 OK: queued\r\n")?;
        } else if upper == "RSET" || upper == "NOOP" {
            writer.write_all(b"250 OK\r\n")?;
        } else if upper == "QUIT" {
            writer.write_all(b"221 Bye\r\n")?;
            return Ok(());
        } else {
            writer.write_all(b"502 Command not implemented\r\n")?;
        }
    }
}

fn address(command: &str) -> String {
    let start = command.find('<').map(|i| i + 1).unwrap_or(0);
    let end = command.find('>').unwrap_or(command.len());
    command[start..end].to_owned()
}

fn decode_quoted_printable(text: &str) -> String {
    let joined = text.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Ok(value) = u8::from_str_radix(&joined[i + 1..i + 3], 16)
        {
            out.push(value);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn decode_base64(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    for byte in text.bytes().filter(|b| *b != b'=') {
        let Some(value) = ALPHABET.iter().position(|c| *c == byte) else {
            continue;
        };
        buffer = (buffer << 6) | value as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    out
}
