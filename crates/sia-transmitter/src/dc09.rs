//! SIA DC-09 framing, pure: a message as the transmitter writes it, and the receiver's answer as
//! it reads it. No socket and no clock here; the caller passes the time and the padding.
//!
//! A message is one line:
//!
//! ```text
//! \n CRC 0LLL "SIA-DCS" seq Rrcvr Lline #acct [#acct|Nri1/BA01] _HH:MM:SS,MM-DD-YYYY \r
//! ```
//!
//! - `CRC` is CRC-16/ARC (polynomial 0xA001, reflected, initial 0) over everything from the first
//!   `"` to the end of the timestamp, as four upper-case hex digits; `0LLL` is that span's length
//!   in hex.
//! - Encrypted (`"*SIA-DCS"`), the part after `[` is the hex of AES-CBC (zero IV) over
//!   `<pad>|Nri1/BA01]_HH:MM:SS,MM-DD-YYYY`, the pad (1–16 characters, none of `|[]`) making it a
//!   whole number of 16-byte blocks. The key is the configured key's characters, 16, 24 or 32 of
//!   them for AES-128, -192 or -256: what Home Assistant's `sia` integration and the panels it
//!   receives from do.
//! - The receiver answers `"ACK"` with the same sequence number, `"NAK"` (sequence `0000`, with
//!   its own time: our clock is off, or the message was unreadable), or `"DUH"` (it read the
//!   message and does not know the event). A retransmission keeps its sequence number, so a
//!   receiver can tell a repeat from a new event.

use aes::cipher::{BlockDecryptMut, generic_array::GenericArray};
use aes::cipher::{BlockEncryptMut, KeyIvInit, block_padding::NoPadding};
use protocol::Timestamp;

/// What a message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// An SIA DCS event: `ri` (area) and `code` + `number` (zone or user), `Nri1/BA01`.
    Dcs { area: u16, code: String, number: u16 },
    /// An Ademco Contact ID event: qualifier (1 new, 3 restore, 6 status), event code, partition
    /// and zone or user, `1130 01 003`.
    ContactId { qualifier: u8, event: u16, partition: u8, number: u16 },
    /// A supervision poll (`"NULL"`): "I am here".
    Null,
}

impl Body {
    fn id(&self) -> &'static str {
        match self {
            Body::Dcs { .. } => "SIA-DCS",
            Body::ContactId { .. } => "ADM-CID",
            Body::Null => "NULL",
        }
    }

    /// The data between `|` and `]`.
    fn data(&self) -> String {
        match self {
            Body::Dcs { area, code, number } => format!("Nri{area}/{code}{number:02}"),
            Body::ContactId { qualifier, event, partition, number } => {
                format!("{qualifier}{event:03} {partition:02} {number:03}")
            }
            Body::Null => String::new(),
        }
    }
}

/// Who the messages are from: the account at the centre, and the receiver and line numbers it
/// gave (hex, `R` optional).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// 3 to 16 hex digits.
    pub number: String,
    pub receiver: Option<u32>,
    pub line: u32,
}

impl Account {
    /// `Rrcvr Lline #acct`.
    fn prefix(&self) -> String {
        let receiver = self.receiver.map(|r| format!("R{r:X}")).unwrap_or_default();
        format!("{receiver}L{:X}#{}", self.line, self.number)
    }
}

/// An AES key of 16, 24 or 32 bytes.
#[derive(Clone, PartialEq, Eq)]
pub enum Key {
    Aes128([u8; 16]),
    Aes192([u8; 24]),
    Aes256([u8; 32]),
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself: it ends up in logs.
        f.write_str(match self {
            Key::Aes128(_) => "Key::Aes128(..)",
            Key::Aes192(_) => "Key::Aes192(..)",
            Key::Aes256(_) => "Key::Aes256(..)",
        })
    }
}

impl Key {
    /// The key as configured: 16, 24 or 32 hex characters, whose characters are the key's
    /// bytes (as the receivers read it).
    pub fn parse(text: &str) -> Result<Key, String> {
        if !text.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!(
                "the key must be hex digits (0-9, A-F), {} characters long here, not shown",
                text.len()
            ));
        }
        let bytes = text.as_bytes();
        match bytes.len() {
            16 => Ok(Key::Aes128(bytes.try_into().expect("16"))),
            24 => Ok(Key::Aes192(bytes.try_into().expect("24"))),
            32 => Ok(Key::Aes256(bytes.try_into().expect("32"))),
            n => Err(format!("the key is {n} characters long; it must be 16, 24 or 32 (AES-128, -192 or -256)")),
        }
    }

    /// AES-CBC with a zero IV over whole blocks.
    fn encrypt(&self, plain: &[u8]) -> Vec<u8> {
        debug_assert_eq!(plain.len() % 16, 0);
        let mut buf = plain.to_vec();
        let iv = GenericArray::from([0u8; 16]);
        let n = buf.len();
        let out = match self {
            Key::Aes128(k) => {
                cbc::Encryptor::<aes::Aes128>::new(k.into(), &iv).encrypt_padded_mut::<NoPadding>(&mut buf, n)
            }
            Key::Aes192(k) => {
                cbc::Encryptor::<aes::Aes192>::new(k.into(), &iv).encrypt_padded_mut::<NoPadding>(&mut buf, n)
            }
            Key::Aes256(k) => {
                cbc::Encryptor::<aes::Aes256>::new(k.into(), &iv).encrypt_padded_mut::<NoPadding>(&mut buf, n)
            }
        };
        out.expect("whole blocks").to_vec()
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        if !cipher.len().is_multiple_of(16) {
            return None;
        }
        let mut buf = cipher.to_vec();
        let iv = GenericArray::from([0u8; 16]);
        let out = match self {
            Key::Aes128(k) => {
                cbc::Decryptor::<aes::Aes128>::new(k.into(), &iv).decrypt_padded_mut::<NoPadding>(&mut buf)
            }
            Key::Aes192(k) => {
                cbc::Decryptor::<aes::Aes192>::new(k.into(), &iv).decrypt_padded_mut::<NoPadding>(&mut buf)
            }
            Key::Aes256(k) => {
                cbc::Decryptor::<aes::Aes256>::new(k.into(), &iv).decrypt_padded_mut::<NoPadding>(&mut buf)
            }
        };
        out.ok().map(<[u8]>::to_vec)
    }
}

/// CRC-16/ARC, as DC-09 and its receivers compute it.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xA001 } else { crc >> 1 };
        }
    }
    crc
}

/// `_HH:MM:SS,MM-DD-YYYY`, in UTC.
pub fn timestamp(at: Timestamp) -> String {
    let t = jiff::Timestamp::from_millisecond(at.as_millis() as i64).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    format!("_{}", t.to_zoned(jiff::tz::TimeZone::UTC).strftime("%H:%M:%S,%m-%d-%Y"))
}

/// Reads `HH:MM:SS,MM-DD-YYYY` (UTC) back.
pub fn parse_timestamp(text: &str) -> Option<Timestamp> {
    let t = jiff::civil::DateTime::strptime("%H:%M:%S,%m-%d-%Y", text).ok()?;
    let t = t.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp();
    u64::try_from(t.as_millisecond()).ok().map(Timestamp)
}

/// One message, framed: `\n`, CRC, length, the message, `\r`. `pad` gives the padding's
/// characters when `key` is set (random in use, fixed in tests).
pub fn frame(
    account: &Account,
    seq: u16,
    body: &Body,
    at: Timestamp,
    key: Option<&Key>,
    pad: &mut dyn FnMut(usize) -> String,
) -> Vec<u8> {
    let ts = timestamp(at);
    let data = body.data();
    let message = match key {
        None if *body == Body::Null => format!("\"NULL\"{seq:04}{}[]{ts}", account.prefix()),
        None => format!("\"{}\"{seq:04}{}[#{}|{data}]{ts}", body.id(), account.prefix(), account.number),
        Some(key) => {
            let inner = format!("|{data}]{ts}");
            let padding = pad(16 - inner.len() % 16);
            let cipher = key.encrypt(format!("{padding}{inner}").as_bytes());
            format!("\"*{}\"{seq:04}{}[{}", body.id(), account.prefix(), hex_upper(&cipher))
        }
    };
    let mut out = format!("\n{:04X}{:04X}", crc16(message.as_bytes()), message.len()).into_bytes();
    out.extend_from_slice(message.as_bytes());
    out.push(b'\r');
    out
}

/// `n` padding characters drawn from `[0-9A-Z]` (never `|`, `[` or `]`).
pub fn random_pad(n: usize) -> String {
    const CHARS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    (0..n).map(|_| CHARS[fastrand::usize(..CHARS.len())] as char).collect()
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// What the receiver answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Taken: the message with this sequence number.
    Ack { seq: u16 },
    /// Refused: the receiver's time, when it said it (our clock may be off).
    Nak { their_time: Option<Timestamp> },
    /// Read and not understood (an event code it does not know).
    Duh { seq: u16 },
    /// Not a DC-09 answer (a bad CRC, a wrong length, garbage): why.
    Unreadable(String),
}

/// Reads one answer. An encrypted `ACK` is decrypted with `key` to check it.
pub fn parse_reply(bytes: &[u8], key: Option<&Key>) -> Reply {
    let text = String::from_utf8_lossy(bytes);
    let line = text.trim_matches(|c: char| c == '\n' || c == '\r' || c == '\0' || c.is_whitespace());
    if line.is_empty() {
        return Reply::Unreadable("an empty answer (the receiver could not read the message)".into());
    }
    let (Some(crc), Some(len), Some(message)) = (line.get(..4), line.get(4..8), line.get(8..)) else {
        return Reply::Unreadable(format!("too short: {line:?}"));
    };
    let (Ok(crc), Ok(len)) = (u16::from_str_radix(crc, 16), usize::from_str_radix(len, 16)) else {
        return Reply::Unreadable(format!("no CRC and length: {line:?}"));
    };
    if crc16(message.as_bytes()) != crc {
        return Reply::Unreadable(format!("a wrong CRC: {line:?}"));
    }
    if len != message.len() {
        return Reply::Unreadable(format!("a wrong length ({len} said, {} there): {line:?}", message.len()));
    }
    let Some(rest) = message.strip_prefix('"') else { return Reply::Unreadable(format!("no \"id\": {line:?}")) };
    let Some((id, rest)) = rest.split_once('"') else { return Reply::Unreadable(format!("no \"id\": {line:?}")) };
    let encrypted = id.starts_with('*');
    let seq = rest.get(..4).and_then(|s| s.parse::<u16>().ok());
    match (id.trim_start_matches('*'), seq) {
        ("ACK", Some(seq)) => {
            if encrypted && !encrypted_answer_reads(rest, key) {
                return Reply::Unreadable(format!("an encrypted ACK our key does not open: {line:?}"));
            }
            Reply::Ack { seq }
        }
        ("DUH", Some(seq)) => Reply::Duh { seq },
        ("NAK", _) => {
            let their_time = rest.rsplit_once('_').and_then(|(_, ts)| parse_timestamp(ts));
            Reply::Nak { their_time }
        }
        _ => Reply::Unreadable(format!("an unknown answer {id:?}: {line:?}")),
    }
}

/// An encrypted answer's part after `[` decrypts, with `key`, to `<pad>]_HH:MM:SS,MM-DD-YYYY`.
fn encrypted_answer_reads(rest: &str, key: Option<&Key>) -> bool {
    let (Some(key), Some((_, hex))) = (key, rest.split_once('[')) else { return false };
    let Some(plain) = unhex(hex).and_then(|c| key.decrypt(&c)) else { return false };
    let plain = String::from_utf8_lossy(&plain);
    let time = plain.rsplit_once(']').and_then(|(_, after)| after.strip_prefix('_'));
    time.is_some_and(|t| parse_timestamp(t).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> Account {
        Account { number: "1234".into(), receiver: Some(1), line: 1 }
    }

    /// 2026-12-04 10:20:30 UTC.
    const AT: Timestamp = Timestamp(1_796_379_630_000);

    fn zeros(n: usize) -> String {
        "0".repeat(n)
    }

    #[test]
    fn crc16_is_arc() {
        // The check value of CRC-16/ARC.
        assert_eq!(crc16(b"123456789"), 0xBB3D);
        assert_eq!(crc16(b""), 0);
    }

    #[test]
    fn the_timestamp_is_utc_in_dc09_order_and_reads_back() {
        assert_eq!(timestamp(AT), "_10:20:30,12-04-2026");
        assert_eq!(parse_timestamp("10:20:30,12-04-2026"), Some(AT));
        assert_eq!(parse_timestamp("10:20,12-04-2026"), None);
    }

    #[test]
    fn an_sia_dcs_event_is_framed_with_crc_and_length() {
        let body = Body::Dcs { area: 1, code: "BA".into(), number: 3 };
        let framed = String::from_utf8(frame(&account(), 7, &body, AT, None, &mut zeros)).unwrap();
        let message = "\"SIA-DCS\"0007R1L1#1234[#1234|Nri1/BA03]_10:20:30,12-04-2026";
        assert_eq!(framed, format!("\n{:04X}{:04X}{message}\r", crc16(message.as_bytes()), message.len()));
        assert!(framed.starts_with("\n"), "{framed:?}");
    }

    #[test]
    fn contact_id_and_null_bodies() {
        let cid = Body::ContactId { qualifier: 1, event: 130, partition: 1, number: 3 };
        let framed = String::from_utf8(frame(&account(), 9999, &cid, AT, None, &mut zeros)).unwrap();
        assert!(framed.contains("\"ADM-CID\"9999R1L1#1234[#1234|1130 01 003]_10:20:30,12-04-2026\r"), "{framed:?}");
        let null = String::from_utf8(frame(&account(), 12, &Body::Null, AT, None, &mut zeros)).unwrap();
        assert!(null.ends_with("\"NULL\"0012R1L1#1234[]_10:20:30,12-04-2026\r"), "{null:?}");
        let no_receiver = Account { receiver: None, ..account() };
        let framed = String::from_utf8(frame(&no_receiver, 1, &Body::Null, AT, None, &mut zeros)).unwrap();
        assert!(framed.contains("\"NULL\"0001L1#1234[]"), "{framed:?}");
    }

    #[test]
    fn encrypted_events_decrypt_to_pad_data_and_time() {
        for key in ["0123456789ABCDEF", "0123456789ABCDEF01234567", "0123456789ABCDEF0123456789ABCDEF"] {
            let key = Key::parse(key).unwrap();
            let body = Body::Dcs { area: 1, code: "BA".into(), number: 3 };
            let framed = String::from_utf8(frame(&account(), 2, &body, AT, Some(&key), &mut random_pad)).unwrap();
            let message = framed.trim();
            assert!(message[8..].starts_with("\"*SIA-DCS\"0002R1L1#1234["), "{message}");
            assert_eq!(u16::from_str_radix(&message[..4], 16).unwrap(), crc16(&message.as_bytes()[8..]));
            let hex = message.split_once('[').unwrap().1;
            let plain = String::from_utf8(key.decrypt(&unhex(hex).unwrap()).unwrap()).unwrap();
            let (pad, data) = plain.split_once('|').unwrap();
            assert!((1..=16).contains(&pad.len()) && !pad.contains(['[', ']']), "{plain}");
            assert_eq!(data, "Nri1/BA03]_10:20:30,12-04-2026");
        }
    }

    #[test]
    fn keys_of_the_wrong_length_or_not_hex_are_refused_without_showing_them() {
        let e = Key::parse("0123456789").unwrap_err();
        assert!(e.contains("10 characters") && e.contains("16, 24 or 32"), "{e}");
        let e = Key::parse("secret-key-not-hex!").unwrap_err();
        assert!(e.contains("hex") && !e.contains("secret"), "{e}");
        assert_eq!(format!("{:?}", Key::parse("0123456789ABCDEF").unwrap()), "Key::Aes128(..)");
    }

    fn answer(message: &str) -> Vec<u8> {
        format!("\n{:04X}{:04X}{message}\r", crc16(message.as_bytes()), message.len()).into_bytes()
    }

    #[test]
    fn answers_are_read() {
        assert_eq!(parse_reply(&answer("\"ACK\"0007R1L1#1234[]"), None), Reply::Ack { seq: 7 });
        assert_eq!(parse_reply(&answer("\"DUH\"0007R1L1#1234[]"), None), Reply::Duh { seq: 7 });
        assert_eq!(
            parse_reply(&answer("\"NAK\"0000R0L0A0[]_10:20:30,12-04-2026"), None),
            Reply::Nak { their_time: Some(AT) }
        );
        assert_eq!(parse_reply(&answer("\"NAK\"0000L0R0A0[]"), None), Reply::Nak { their_time: None });
    }

    #[test]
    fn garbage_is_unreadable_never_an_ack() {
        let bad_crc = {
            let mut a = answer("\"ACK\"0007R1L1#1234[]");
            a[1] = if a[1] == b'0' { b'1' } else { b'0' };
            a
        };
        for (bytes, why) in [
            (b"\n\r".to_vec(), "empty"),
            (b"hello".to_vec(), "too short"),
            (b"zzzzzzzz\"ACK\"0007".to_vec(), "no CRC"),
            (bad_crc, "wrong CRC"),
            (answer("\"OK\"0007R1L1#1234[]"), "unknown answer"),
            (b"\n0000FFFF\"ACK\"\r".to_vec(), "CRC"),
        ] {
            let reply = parse_reply(&bytes, None);
            assert!(matches!(reply, Reply::Unreadable(_)), "{why}: {reply:?}");
        }
    }

    #[test]
    fn an_encrypted_ack_must_open_with_our_key() {
        let key = Key::parse("0123456789ABCDEF").unwrap();
        let inner = "]_10:20:30,12-04-2026";
        let plain = format!("{}{inner}", "0".repeat(16 - inner.len() % 16));
        let good = format!("\"*ACK\"0002R1L1#1234[{}", hex_upper(&key.encrypt(plain.as_bytes())));
        assert_eq!(parse_reply(&answer(&good), Some(&key)), Reply::Ack { seq: 2 });
        let other = Key::parse("FEDCBA9876543210").unwrap();
        assert!(matches!(parse_reply(&answer(&good), Some(&other)), Reply::Unreadable(_)));
        assert!(matches!(parse_reply(&answer(&good), None), Reply::Unreadable(_)));
    }
}
