//! Who may use the page: the login (an Argon2id password hash or a token), sessions, CSRF tokens
//! and the limit on wrong logins.
//!
//! - Without a login configured (loopback only), one CSRF token is made at start and embedded in
//!   the page; every POST must send it back in the `x-csrf-token` header. A page of another origin
//!   cannot read ours, so it cannot learn the token.
//! - With a login, a session is a random 256-bit id in an `HttpOnly; SameSite=Strict` cookie that
//!   expires; each session has its own CSRF token. The login form itself carries the start token.
//! - Wrong logins are counted per client address: past the limit within a minute, every attempt
//!   is refused (429) unchecked until the minute has passed.
//!
//! Passwords, tokens and session ids are compared in constant time and never logged.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::{Argon2, PasswordHash, PasswordVerifier};
use device_runtime::Secret;

/// The session cookie's name.
pub const COOKIE: &str = "mqtt_home_session";
/// The header every POST carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The window wrong logins are counted in.
const WINDOW: Duration = Duration::from_secs(60);
/// At most this many sessions at once; the oldest go first.
const MAX_SESSIONS: usize = 1000;
/// At most this many client addresses tracked for wrong logins.
const MAX_TRACKED: usize = 10_000;

/// 32 random bytes, hex.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Equality whose time does not depend on where the inputs differ.
pub fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A logged-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    pub csrf: String,
    pub expires: Instant,
}

/// The outcome of a login attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    /// A new session id (for the cookie).
    Accepted(String),
    Refused,
    /// Too many wrong logins from this address; try again after this long.
    Limited(Duration),
}

/// Logins, sessions and CSRF tokens.
pub struct Auth {
    password_hash: Option<String>,
    token: Option<Secret>,
    session_ttl: Duration,
    attempts_per_window: usize,
    /// The CSRF token of a browser without a session (every browser, when there is no login).
    pub start_csrf: String,
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").field("login_required", &self.login_required()).finish_non_exhaustive()
    }
}

impl Auth {
    pub fn new(
        password_hash: Option<String>,
        token: Option<Secret>,
        session_ttl: Duration,
        attempts_per_minute: u32,
    ) -> Auth {
        Auth {
            password_hash,
            token,
            session_ttl,
            attempts_per_window: attempts_per_minute as usize,
            start_csrf: random_token(),
            sessions: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
        }
    }

    pub fn login_required(&self) -> bool {
        self.password_hash.is_some() || self.token.is_some()
    }

    pub fn session_ttl(&self) -> Duration {
        self.session_ttl
    }

    /// The live session with this id, if any.
    pub fn session(&self, id: &str) -> Option<Session> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        sessions.retain(|_, s| s.expires > now);
        sessions.iter().find(|(key, _)| same(key, id)).map(|(_, s)| s.clone())
    }

    pub fn logout(&self, id: &str) {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner()).retain(|key, _| !same(key, id));
    }

    /// Counts a login attempt from `client` before it is checked, so that tries sent in parallel
    /// are limited as tries one after another are: past the limit it is refused unchecked.
    pub fn attempt(&self, client: IpAddr) -> Result<Attempt, Login> {
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() > MAX_TRACKED {
            failures.retain(|_, times| times.back().is_some_and(|t| now.duration_since(*t) < WINDOW));
        }
        let times = failures.entry(client).or_default();
        while times.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
            times.pop_front();
        }
        if times.len() >= self.attempts_per_window {
            let oldest = times.front().copied().unwrap_or(now);
            return Err(Login::Limited(WINDOW.saturating_sub(now.duration_since(oldest))));
        }
        times.push_back(now);
        Ok(Attempt { client, at: now })
    }

    /// Checks `secret` against the password hash or the token. The Argon2 check is slow on
    /// purpose; call this off the async threads. A right one gives its attempt back.
    pub fn check(&self, attempt: Attempt, secret: &str) -> Login {
        let by_password = self.password_hash.as_deref().is_some_and(|hash| {
            PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(secret.as_bytes(), &h).is_ok())
        });
        let by_token = self.token.as_ref().is_some_and(|t| same(t.expose(), secret));
        if !(by_password || by_token) {
            return Login::Refused;
        }
        {
            let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(times) = failures.get_mut(&attempt.client)
                && let Some(i) = times.iter().position(|t| *t == attempt.at)
            {
                times.remove(i);
            }
        }
        let now = Instant::now();
        let id = random_token();
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.retain(|_, s| s.expires > now);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| k.clone())
        {
            sessions.remove(&oldest);
        }
        sessions.insert(id.clone(), Session { csrf: random_token(), expires: now + self.session_ttl });
        Login::Accepted(id)
    }

    /// [`Auth::attempt`] then [`Auth::check`].
    pub fn login(&self, client: IpAddr, secret: &str) -> Login {
        match self.attempt(client) {
            Ok(attempt) => self.check(attempt, secret),
            Err(limited) => limited,
        }
    }
}

/// A login attempt counted against its client's limit (see [`Auth::attempt`]).
#[derive(Debug)]
pub struct Attempt {
    client: IpAddr,
    at: Instant,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_compared_whole() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(same(&a, &a.clone()));
        assert!(!same(&a, &b) && !same(&a, &a[..63]));
    }

    #[test]
    fn wrong_logins_are_limited_per_address_and_a_right_one_opens_a_session() {
        let auth = Auth::new(None, Some(Secret::new("correct-horse-battery")), Duration::from_secs(60), 2);
        let client: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(auth.login(client, "wrong"), Login::Refused);
        assert_eq!(auth.login(client, "wrong"), Login::Refused);
        assert!(matches!(auth.login(client, "correct-horse-battery"), Login::Limited(_)), "limited even when right");
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(matches!(auth.login(other, "correct-horse-battery"), Login::Accepted(_)));
        let Login::Accepted(id) = auth.login(other, "correct-horse-battery") else { panic!("refused") };
        let session = auth.session(&id).expect("a live session");
        assert_ne!(session.csrf, auth.start_csrf);
        auth.logout(&id);
        assert!(auth.session(&id).is_none());
    }

    #[test]
    fn tries_in_parallel_are_limited_as_tries_in_turn() {
        // The finding: 40 wrong logins at once from one address were all checked (limit 5).
        let hash = {
            use argon2::password_hash::{PasswordHasher, SaltString};
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default().hash_password(b"correct-horse-battery", &salt).unwrap().to_string()
        };
        let auth = std::sync::Arc::new(Auth::new(Some(hash), None, Duration::from_secs(60), 5));
        let client: IpAddr = "192.0.2.7".parse().unwrap();
        let tries: Vec<_> = (0..40)
            .map(|_| {
                let auth = auth.clone();
                std::thread::spawn(move || auth.login(client, "wrong"))
            })
            .collect();
        let outcomes: Vec<Login> = tries.into_iter().map(|t| t.join().unwrap()).collect();
        let refused = outcomes.iter().filter(|o| **o == Login::Refused).count();
        let limited = outcomes.iter().filter(|o| matches!(o, Login::Limited(_))).count();
        assert_eq!((refused, limited), (5, 35), "checked: {refused}");
    }
}
