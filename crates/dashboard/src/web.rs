//! The web server: the page, its live stream, the JSON API and the two commands.
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the page (HTML, CSS and JS built into the binary; no CDN, no build step) |
//! | `GET /events` | Server-Sent Events: `snapshot` (the whole home) first, then each `change` |
//! | `GET /api/home` | the whole home as JSON |
//! | `GET /api/history?since=24h&kind=panel&device=…&limit=200` | the recorder's records, oldest first |
//! | `GET /api/activity?since=24h` | openings and motion per hour |
//! | `POST /api/panel` | `{"action":"disarm","code":"1234"}` (and `"area":"garage"`) → a `PanelCommand` on the panel's (or the area's) set topic |
//! | `POST /api/lights/{id}` | `{"state":"ON","brightness":40,"color_temp_k":2700}` → a `LightCommand` |
//! | `GET /login`, `POST /login`, `POST /logout` | the login, when one is configured |
//! | `GET /healthz` | 200 while the broker is reached, 503 while it is not |
//!
//! Every POST needs the CSRF token the page was served with, in the `x-csrf-token` header (403
//! without it). Errors are JSON `{"error":"…"}` with a sentence that says what to do. A PIN is
//! never logged, stored or echoed: a panel command's bad JSON is answered without serde's message,
//! which could quote it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use device_runtime::Shutdown;
use futures_util::Stream;
use protocol::Topics;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use crate::auth::{Auth, COOKIE, CSRF_HEADER, Login, Session};
use crate::device::{Command, Shared};
use crate::history::{self, ActivityParams, HistoryError, HistoryParams};

const PAGE: &str = include_str!("../assets/index.html");
const LOGIN_PAGE: &str = include_str!("../assets/login.html");
const APP_JS: &str = include_str!("../assets/app.js");
const LOGIN_JS: &str = include_str!("../assets/login.js");
const STYLE: &str = include_str!("../assets/style.css");

/// What every handler shares.
pub struct AppState {
    pub shared: Arc<Shared>,
    pub commands: mpsc::Sender<Command>,
    pub auth: Auth,
    pub database: PathBuf,
    pub topics: Topics,
    pub secure_cookie: bool,
    pub shutdown: Shutdown,
    /// Host names answered besides `localhost` and IP addresses (see [`host_allowed`]).
    pub allowed_hosts: Vec<String>,
    /// Where the Argon2 login checks run (one at a time, at the lowest priority).
    pub login_checks: crate::checks::LoginChecks,
}

type App = Arc<AppState>;

/// The router, with the body limit and the security headers on every answer.
pub fn router(state: App, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/app.js", get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }))
        .route("/login.js", get(|| async { asset("text/javascript; charset=utf-8", LOGIN_JS) }))
        .route("/style.css", get(|| async { asset("text/css; charset=utf-8", STYLE) }))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/healthz", get(healthz))
        .route("/events", get(events))
        .route("/api/home", get(home))
        .route("/api/history", get(history_rows))
        .route("/api/activity", get(activity))
        .route("/api/panel", post(panel))
        .route("/api/lights/{id}", post(light))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such page or endpoint") })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(state.clone(), known_host))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// Refuses a request whose `Host` (or `Origin`) names a host this dashboard does not answer to:
/// a page on `rebind.example`, whose name an attacker points at 127.0.0.1, is then only ever
/// answered 421 — it never reads the page, its CSRF token or the API.
async fn known_host(State(app): State<App>, request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let headers = request.headers();
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !host_allowed(host, &app.allowed_hosts) {
        return error(
            StatusCode::MISDIRECTED_REQUEST,
            "this dashboard does not answer to that host name: open it by its address or localhost, or add the \
             name to allowed_hosts in dashboard.toml",
        );
    }
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    if let Some(origin) = origin.filter(|o| *o != "null") {
        let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
        if !host_allowed(origin_host, &app.allowed_hosts) {
            return error(StatusCode::FORBIDDEN, "a request from a page of another site is refused");
        }
    }
    next.run(request).await
}

/// Whether `host` (a `Host` header: a name or address, with an optional port) is one to answer
/// to: an IP address (a rebinding page is never on one), `localhost`, or a name of `allowed`.
pub fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let name = match host.strip_prefix('[') {
        // [v6]:port
        Some(rest) => return rest.split_once(']').is_some_and(|(ip, _)| ip.parse::<std::net::Ipv6Addr>().is_ok()),
        None => {
            host.rsplit_once(':').map_or(host, |(name, port)| if port.parse::<u16>().is_ok() { name } else { host })
        }
    };
    if name.is_empty() {
        return false;
    }
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name.parse::<std::net::Ipv4Addr>().is_ok()
        || name == "localhost"
        || allowed.iter().any(|a| a.trim_end_matches('.').eq_ignore_ascii_case(&name))
}

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = |h: &mut HeaderMap, name: &'static str, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(
        headers,
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
         frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    );
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "x-frame-options", "DENY");
    set(headers, "referrer-policy", "no-referrer");
    if !headers.contains_key(header::CACHE_CONTROL) {
        set(headers, "cache-control", "no-store");
    }
    response
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// `{"error": message}` with `status`.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
}

/// Why a request may not go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Denied {
    /// A login is configured and the caller has no live session (401).
    LogIn,
    /// A POST without the right CSRF token (403).
    Csrf,
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        match self {
            Denied::LogIn => error(StatusCode::UNAUTHORIZED, "log in first (GET /login); the session may have expired"),
            Denied::Csrf => error(
                StatusCode::FORBIDDEN,
                "missing or wrong CSRF token: send the x-csrf-token header with the token the page was served with \
                 (reload the page)",
            ),
        }
    }
}

impl AppState {
    /// The caller's session, when a login is configured and it has one.
    fn session(&self, headers: &HeaderMap) -> Option<Session> {
        cookie(headers, COOKIE).and_then(|id| self.auth.session(id))
    }

    /// Whether the caller may read: no login configured, or a live session. The CSRF token its
    /// POSTs must carry.
    fn reader(&self, headers: &HeaderMap) -> Result<String, Denied> {
        if !self.auth.login_required() {
            return Ok(self.auth.start_csrf.clone());
        }
        self.session(headers).map(|s| s.csrf).ok_or(Denied::LogIn)
    }

    /// Whether the caller may change something: it may read and sent its CSRF token.
    fn writer(&self, headers: &HeaderMap) -> Result<(), Denied> {
        let expected = self.reader(headers)?;
        csrf_ok(headers, &expected).then_some(()).ok_or(Denied::Csrf)
    }

    fn send(&self, command: Command) -> Response {
        // Not "sent" while the broker is gone: a command queued now could go out minutes later, when
        // nobody at the keypad expects it any more.
        if !self.shared.connected() {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the broker is not reachable: nothing was sent; try again when the page says live",
            );
        }
        match self.commands.try_send(command) {
            Ok(()) => (StatusCode::ACCEPTED, Json(json!({ "sent": true }))).into_response(),
            Err(mpsc::error::TrySendError::Full(_)) => {
                error(StatusCode::SERVICE_UNAVAILABLE, "too many commands are waiting to be sent; try again")
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                error(StatusCode::SERVICE_UNAVAILABLE, "the dashboard is shutting down")
            }
        }
    }
}

fn csrf_ok(headers: &HeaderMap, expected: &str) -> bool {
    headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).is_some_and(|sent| crate::auth::same(sent, expected))
}

async fn page(State(app): State<App>, headers: HeaderMap) -> Response {
    match app.reader(&headers) {
        Ok(csrf) => {
            let login = if app.auth.login_required() { "true" } else { "false" };
            Html(PAGE.replace("{{CSRF}}", &csrf).replace("{{LOGIN}}", login)).into_response()
        }
        Err(_) => Redirect::to("/login").into_response(),
    }
}

async fn login_page(State(app): State<App>, headers: HeaderMap) -> Response {
    if !app.auth.login_required() || app.session(&headers).is_some() {
        return Redirect::to("/").into_response();
    }
    Html(LOGIN_PAGE.replace("{{CSRF}}", &app.auth.start_csrf)).into_response()
}

async fn login(
    State(app): State<App>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !app.auth.login_required() {
        return error(StatusCode::NOT_FOUND, "no login is configured on this dashboard");
    }
    if !csrf_ok(&headers, &app.auth.start_csrf) {
        return Denied::Csrf.into_response();
    }
    let password = match crate::body::login_password(&body) {
        Ok(password) => password,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    // Counted first, then checked on the login-check thread (`checks`: one at a time, at the lowest
    // priority): a storm of logins waits its turn or is refused; it never takes the machine's
    // memory, nor the panel's CPU.
    let attempt = match app.auth.attempt(client.ip()) {
        Ok(attempt) => attempt,
        Err(limited) => return login_answer(&app, client, limited),
    };
    let checker = app.clone();
    let outcome = app.login_checks.run(move || checker.auth.check(attempt, &password)).await;
    match outcome {
        Ok(login) => login_answer(&app, client, login),
        Err(e @ crate::checks::CheckError::Busy) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("the login check failed: {e}")),
    }
}

/// The answer to a login's outcome.
fn login_answer(app: &AppState, client: SocketAddr, login: Login) -> Response {
    match login {
        Login::Accepted(id) => {
            tracing::info!("login from {}", client.ip());
            let secure = if app.secure_cookie { "; Secure" } else { "" };
            let cookie = format!(
                "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
                app.auth.session_ttl().as_secs()
            );
            ([(header::SET_COOKIE, cookie)], Json(json!({ "ok": true }))).into_response()
        }
        Login::Refused => {
            tracing::warn!("wrong login from {}", client.ip());
            error(StatusCode::UNAUTHORIZED, "wrong password or token")
        }
        Login::Limited(wait) => {
            let secs = wait.as_secs().max(1);
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                format!("too many wrong logins from this address; try again in {secs} s"),
            );
            if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
    }
}

async fn logout(State(app): State<App>, headers: HeaderMap) -> Response {
    if let Err(denied) = app.writer(&headers) {
        return denied.into_response();
    }
    if let Some(id) = cookie(&headers, COOKIE) {
        app.auth.logout(id);
    }
    let expired = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    ([(header::SET_COOKIE, expired)], Json(json!({ "ok": true }))).into_response()
}

async fn healthz(State(app): State<App>) -> Response {
    if app.shared.connected() {
        Json(json!({ "status": "ok" })).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "error": "the broker is not reachable (or not yet)" })),
        )
            .into_response()
    }
}

async fn home(State(app): State<App>, headers: HeaderMap) -> Response {
    match app.reader(&headers) {
        Ok(_) => Json(app.shared.snapshot()).into_response(),
        Err(denied) => denied.into_response(),
    }
}

async fn events(State(app): State<App>, headers: HeaderMap) -> Response {
    if let Err(denied) = app.reader(&headers) {
        return denied.into_response();
    }
    Sse::new(live(app.shared.clone(), app.shutdown.clone())).keep_alive(KeepAlive::default()).into_response()
}

/// The whole home, then every change; the whole home again if this page fell too far behind.
/// Ends at shutdown, so that the server can stop.
fn live(shared: Arc<Shared>, shutdown: Shutdown) -> impl Stream<Item = Result<Event, Infallible>> {
    let start: Option<tokio::sync::broadcast::Receiver<crate::home::Change>> = None;
    futures_util::stream::unfold((shared, shutdown, start), |(shared, shutdown, receiver)| async move {
        let Some(mut receiver) = receiver else {
            let (snapshot, receiver) = shared.subscribe();
            let event = data_event("snapshot", &snapshot);
            return Some((Ok(event), (shared, shutdown, Some(receiver))));
        };
        let next = tokio::select! {
            () = shutdown.wait() => return None,
            next = receiver.recv() => next,
        };
        match next {
            Ok(change) => Some((Ok(data_event("change", &change)), (shared, shutdown, Some(receiver)))),
            Err(RecvError::Lagged(_)) => {
                let (snapshot, receiver) = shared.subscribe();
                Some((Ok(data_event("snapshot", &snapshot)), (shared, shutdown, Some(receiver))))
            }
            Err(RecvError::Closed) => None,
        }
    })
}

fn data_event<T: serde::Serialize>(name: &str, value: &T) -> Event {
    let data = serde_json::to_string(value).unwrap_or_else(|_| "null".into());
    Event::default().event(name).data(data)
}

fn history_response<T: serde::Serialize>(outcome: Result<T, HistoryError>) -> Response {
    match outcome {
        Ok(value) => Json(value).into_response(),
        Err(e @ HistoryError::BadRequest(_)) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e @ HistoryError::Unavailable(_)) => {
            tracing::debug!("{e}");
            error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
    }
}

/// A reader's query: the reader checked, then the query string read; either refusal as its response.
fn reader_query<T>(
    app: &App,
    headers: &HeaderMap,
    params: Result<Query<T>, QueryRejection>,
) -> Result<T, Box<Response>> {
    app.reader(headers).map_err(|denied| Box::new(denied.into_response()))?;
    let bad =
        |e: QueryRejection| Box::new(error(StatusCode::BAD_REQUEST, format!("bad query string: {}", e.body_text())));
    params.map(|Query(params)| params).map_err(bad)
}

async fn history_rows(
    State(app): State<App>,
    headers: HeaderMap,
    params: Result<Query<HistoryParams>, QueryRejection>,
) -> Response {
    let params = match reader_query(&app, &headers, params) {
        Ok(params) => params,
        Err(refused) => return *refused,
    };
    let outcome = history::history(app.database.clone(), params).await.map(|rows| json!({ "rows": rows }));
    history_response(outcome)
}

async fn activity(
    State(app): State<App>,
    headers: HeaderMap,
    params: Result<Query<ActivityParams>, QueryRejection>,
) -> Response {
    let params = match reader_query(&app, &headers, params) {
        Ok(params) => params,
        Err(refused) => return *refused,
    };
    history_response(history::activity(app.database.clone(), app.topics.clone(), params).await)
}

async fn panel(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(denied) = app.writer(&headers) {
        return denied.into_response();
    }
    match crate::body::panel_command(&body) {
        Ok((area, command)) => app.send(Command::Panel { area, command }),
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

async fn light(State(app): State<App>, headers: HeaderMap, Path(id): Path<String>, body: Bytes) -> Response {
    if let Err(denied) = app.writer(&headers) {
        return denied.into_response();
    }
    if let Err(e) = protocol::validate_id(&id) {
        return error(StatusCode::BAD_REQUEST, format!("light id: {e}"));
    }
    match crate::body::light_command(&body) {
        Ok(command) => app.send(Command::Light { id, command }),
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; mqtt_home_session=abc ; b=2"));
        assert_eq!(cookie(&headers, COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "b"), Some("2"));
        assert_eq!(cookie(&headers, "c"), None);
    }

    #[test]
    fn only_addresses_localhost_and_configured_names_are_answered() {
        let allowed = vec!["dashboard.example.org".to_string()];
        let cases = [
            ("127.0.0.1:8080", true),
            ("127.0.0.1", true),
            ("192.168.1.20:8080", true),
            ("[::1]:8080", true),
            ("[::1]", true),
            ("localhost:8080", true),
            ("LOCALHOST", true),
            ("dashboard.example.org", true),
            ("Dashboard.Example.Org.:443", true),
            ("rebind.example:8080", false),
            ("rebind.example", false),
            ("127.0.0.1.rebind.example", false),
            ("localhost.rebind.example", false),
            ("[not-an-ip]:80", false),
            ("", false),
            (":8080", false),
        ];
        for (host, want) in cases {
            assert_eq!(host_allowed(host, &allowed), want, "{host}");
        }
        assert!(!host_allowed("dashboard.example.org", &[]), "a name only when configured");
    }
}
