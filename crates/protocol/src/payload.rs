//! Encoding and strict, total decoding of payloads.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// What was wrong with a payload. Every variant names the message type it was read as.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{what}: payload is empty")]
    Empty { what: &'static str },
    #[error("{what}: payload is not UTF-8 text")]
    NotUtf8 { what: &'static str },
    #[error("{what}: {detail}")]
    Json { what: &'static str, detail: String },
    #[error("{what}: {detail}")]
    Invalid { what: &'static str, detail: String },
}

impl DecodeError {
    pub(crate) fn invalid(what: &'static str, detail: impl Into<String>) -> DecodeError {
        DecodeError::Invalid { what, detail: detail.into() }
    }
}

/// A message type of the contract.
pub trait Payload: Sized + Serialize + DeserializeOwned {
    /// What the message is, in words, for error messages (e.g. `light command`).
    const WHAT: &'static str;

    /// Decodes a payload received from the broker. Never panics.
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let value: Self = decode_json(Self::WHAT, bytes)?;
        value.validate()?;
        Ok(value)
    }

    /// Checks ranges and combinations that the types alone cannot express.
    fn validate(&self) -> Result<(), DecodeError> {
        Ok(())
    }

    /// The bytes to publish.
    fn encode(&self) -> Vec<u8> {
        // Our payload types have string keys only, so serialization cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The payload as trimmed text, or the error saying why it is not.
pub(crate) fn text<'a>(what: &'static str, bytes: &'a [u8]) -> Result<&'a str, DecodeError> {
    let s = std::str::from_utf8(bytes).map_err(|_| DecodeError::NotUtf8 { what })?.trim();
    if s.is_empty() {
        return Err(DecodeError::Empty { what });
    }
    Ok(s)
}

pub(crate) fn decode_json<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, DecodeError> {
    let s = text(what, bytes)?;
    serde_json::from_str(s).map_err(|e| DecodeError::Json { what, detail: e.to_string() })
}

/// True when `s` looks like a JSON document rather than a bare word.
pub(crate) fn is_json(s: &str) -> bool {
    s.starts_with('{') || s.starts_with('[') || s.starts_with('"')
}
