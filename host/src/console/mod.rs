//! The operator console: web pages served by `toolhost serve` itself under
//! `/console`, for the support leads and operations staff who approve
//! vouchers and roll back connectors without curl.
//!
//! Pages are rendered on the server from templates compiled into the binary
//! (`host/templates/console`), and work without script; one small embedded
//! script adds what must be live (the approval queue, the calls as they
//! finish) over server-sent events. Every asset is embedded: the console
//! needs no internet and no build step. Changes are plain form posts that go
//! through the same functions as the REST API, then redirect back
//! (post/redirect/get), so the API and the console cannot drift apart.
//!
//! Who may see and do what is the API's rule (see [`session::Right`]); what a
//! role may not do is neither shown nor accepted.

mod approvals;
mod audit;
mod overview;
mod plugins;
mod runs;
pub mod session;
pub mod store;

use askama::Template;
use axum::extract::{DefaultBodyLimit, Path, Request};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::server::api::{ApiError, Shared};
use session::{Flash, Right, Viewer};

pub use store::Sessions;

/// No inline script or style, nothing from elsewhere, no framing: a page
/// can run only the console's own script and talk only to this host.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console's routes, under `/console`.
pub fn router() -> Router<Shared> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console") }))
        .route("/console", get(overview::page))
        .route("/console/sign-in", get(sign_in_page).post(sign_in))
        .route("/console/sign-out", post(sign_out))
        .route("/console/assets/{file}", get(asset))
        .route("/console/plugins/{name}", get(plugins::page))
        .route("/console/plugins/{name}/grant", post(plugins::grant))
        .route("/console/plugins/{name}/enable", post(plugins::enable))
        .route("/console/plugins/{name}/disable", post(plugins::disable))
        .route("/console/plugins/{name}/rollback", post(plugins::rollback))
        .route(
            "/console/plugins/{name}/upload",
            post(plugins::upload).layer(DefaultBodyLimit::max(
                crate::plugins::bundle::MAX_COMPONENT_BYTES as usize + 1024 * 1024,
            )),
        )
        .route("/console/approvals", get(approvals::page))
        .route("/console/approvals/queue", get(approvals::queue))
        .route("/console/approvals/queue/{id}", get(approvals::item))
        .route("/console/approvals/stream", get(approvals::stream))
        .route("/console/approvals/{id}/decide", post(approvals::decide))
        .route("/console/audit", get(audit::page))
        .route("/console/audit/timeline", get(audit::timeline))
        .route("/console/live", get(audit::live))
        .route("/console/live/stream", get(audit::live_stream))
        .route("/console/runs", get(runs::list))
        .route("/console/runs/{id}", get(runs::page))
        .route("/console/runs/{id}/cancel", post(runs::cancel))
        .layer(axum::middleware::from_fn(same_origin))
        .layer(axum::middleware::from_fn(secure_headers))
}

/// Why a console request was not served: not signed in (to the sign-in
/// page), or a page saying what went wrong.
#[derive(Debug)]
pub enum Refusal {
    SignIn,
    Page { status: StatusCode, message: String },
}

impl Refusal {
    pub fn page(status: StatusCode, message: impl Into<String>) -> Refusal {
        Refusal::Page {
            status,
            message: message.into(),
        }
    }

    fn not_found(what: impl Into<String>) -> Refusal {
        Refusal::page(StatusCode::NOT_FOUND, what)
    }
}

/// An API error's message, as the API would have said it.
fn message(e: &ApiError) -> String {
    e.body["error"]["message"]
        .as_str()
        .map_or_else(|| e.body.to_string(), str::to_string)
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Refusal {
        Refusal::page(e.status, message(&e))
    }
}

/// An operator's action refused, as the API would answer it.
impl From<crate::app::operator::OperatorError> for Refusal {
    fn from(e: crate::app::operator::OperatorError) -> Refusal {
        Refusal::from(ApiError::from(e))
    }
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage {
    status: u16,
    reason: &'static str,
    message: String,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::SignIn => Redirect::to("/console/sign-in").into_response(),
            Refusal::Page { status, message } => {
                let page = ErrorPage {
                    status: status.as_u16(),
                    reason: status.canonical_reason().unwrap_or("Error"),
                    message,
                };
                (status, render(&page)).into_response()
            }
        }
    }
}

/// A page, or a plain 500 if its template fails (it cannot, short of a bug).
fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!("console: rendering a page: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered").into_response()
        }
    }
}

/// The console's sections, in the order the navigation shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Overview,
    Approvals,
    Audit,
    Live,
    Runs,
}

impl Section {
    const ALL: [Section; 5] = [
        Section::Overview,
        Section::Approvals,
        Section::Audit,
        Section::Live,
        Section::Runs,
    ];

    fn href(self) -> &'static str {
        match self {
            Section::Overview => "/console",
            Section::Approvals => "/console/approvals",
            Section::Audit => "/console/audit",
            Section::Live => "/console/live",
            Section::Runs => "/console/runs",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Section::Overview => "Overview",
            Section::Approvals => "Approvals",
            Section::Audit => "Audit",
            Section::Live => "Live calls",
            Section::Runs => "Runs",
        }
    }
}

pub struct Link {
    pub href: &'static str,
    pub label: &'static str,
    pub current: bool,
}

/// What every page's frame shows: who is signed in, where they are, and
/// the outcome of their last change.
pub struct Nav {
    pub name: String,
    pub role: &'static str,
    pub csrf: String,
    pub links: Vec<Link>,
    pub flash: Option<Flash>,
    /// Rights the page's controls depend on.
    pub manage: bool,
    pub decide: bool,
    pub cancel: bool,
}

impl Nav {
    /// A page's frame; it shows (and so clears) the last change's outcome.
    fn new(viewer: &Viewer, here: Section) -> Nav {
        Nav {
            flash: viewer.take_flash(),
            ..Nav::keep_flash(viewer, here)
        }
    }

    /// For a part of a page read by its script: the outcome of a change is
    /// left for the page the browser goes to next.
    fn keep_flash(viewer: &Viewer, here: Section) -> Nav {
        Nav {
            name: viewer.principal.name.clone(),
            role: viewer.principal.role.as_str(),
            csrf: viewer.csrf().to_string(),
            links: Section::ALL
                .iter()
                .map(|&s| Link {
                    href: s.href(),
                    label: s.label(),
                    current: s == here,
                })
                .collect(),
            flash: None,
            manage: viewer.may(Right::ManagePlugins),
            decide: viewer.may(Right::Decide),
            cancel: viewer.may(Right::CancelRuns),
        }
    }
}

/// After a change: say how it went on the next page, and go there.
fn done(viewer: &Viewer, to: &str, outcome: Result<String, Refusal>) -> Result<Response, Refusal> {
    match outcome {
        Ok(text) => viewer.flash(true, text),
        // Not signed in or not allowed: the error page, not a flash.
        Err(Refusal::Page { status, message }) if status != StatusCode::FORBIDDEN => viewer.flash(false, message),
        Err(refusal) => return Err(refusal),
    }
    Ok(Redirect::to(to).into_response())
}

#[derive(Template)]
#[template(path = "console/sign_in.html")]
struct SignInPage {
    problem: Option<String>,
}

async fn sign_in_page() -> Response {
    render(&SignInPage { problem: None })
}

#[derive(serde::Deserialize)]
struct SignIn {
    token: String,
}

/// Exchange a token for a session. A wrong token gets the form again, with
/// the same words whether it is unknown or an agent's.
async fn sign_in(
    axum::extract::State(state): axum::extract::State<Shared>,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    headers: axum::http::HeaderMap,
    form: Result<axum::Form<SignIn>, axum::extract::rejection::FormRejection>,
) -> Response {
    let refused = |status: StatusCode, problem: &str| {
        (
            status,
            render(&SignInPage {
                problem: Some(problem.to_string()),
            }),
        )
            .into_response()
    };
    let Ok(axum::Form(form)) = form else {
        return refused(StatusCode::BAD_REQUEST, "Enter a token.");
    };
    // An agent's token and an unknown one are refused alike: the answer
    // tells nobody which tokens exist and what they may do. Either counts
    // as a failed check of its source, as over the API.
    let principal = state
        .app
        .auth
        .check(form.token.trim())
        .filter(|p| p.role != crate::config::Role::Agent);
    let Some(principal) = principal else {
        let source = peer.map(|p| p.0 .0.ip());
        let failure = crate::app::metrics::BearerFailure::Unknown;
        if state
            .bearer_failures
            .charge(failure, source, &state.app.metrics)
            .is_some()
        {
            return refused(StatusCode::TOO_MANY_REQUESTS, "Too many attempts; wait a moment.");
        }
        return refused(
            StatusCode::UNAUTHORIZED,
            "That token cannot sign in here; use an admin, approver or observer token.",
        );
    };
    if !principal.admit() {
        return refused(StatusCode::TOO_MANY_REQUESTS, "Too many attempts; wait a moment.");
    }
    match state.console.open(&principal.name) {
        Ok(cookie) => {
            tracing::info!(token = %principal.name, "console: signed in");
            let set = session::set_cookie(&cookie, state.console.lifetime(), &headers);
            ([(header::SET_COOKIE, set)], Redirect::to("/console")).into_response()
        }
        Err(e) => refused(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

#[derive(serde::Deserialize)]
struct Csrf {
    csrf: String,
}

async fn sign_out(
    viewer: Viewer,
    axum::extract::State(state): axum::extract::State<Shared>,
    form: Result<axum::Form<Csrf>, axum::extract::rejection::FormRejection>,
) -> Result<Response, Refusal> {
    let axum::Form(form) = form.map_err(|e| Refusal::page(StatusCode::BAD_REQUEST, e.body_text()))?;
    viewer.check_csrf(&form.csrf)?;
    state.console.close(viewer.cookie());
    tracing::info!(token = %viewer.principal.name, "console: signed out");
    Ok((
        [(header::SET_COOKIE, session::clear_cookie())],
        Redirect::to("/console/sign-in"),
    )
        .into_response())
}

/// The embedded stylesheet and script.
async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "console.css" => (include_str!("assets/console.css"), "text/css; charset=utf-8"),
        "console.js" => (include_str!("assets/console.js"), "text/javascript; charset=utf-8"),
        _ => return Refusal::not_found(format!("no asset named {file:?}")).into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            // Asked again on each page, so an upgraded host's script never
            // runs against another version's pages (12.3 KB together).
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// Headers on every console response: the content security policy, no
/// framing, no sniffing, no referrer to other sites, and pages not kept in caches.
async fn secure_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let set = |headers: &mut axum::http::HeaderMap, name: header::HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(headers, header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY);
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    // Not `no-referrer`: with it, browsers send `Origin: null` on the
    // console's own posts, and `same_origin` could not tell them apart.
    set(headers, header::REFERRER_POLICY, "same-origin");
    if !headers.contains_key(header::CACHE_CONTROL) {
        set(headers, header::CACHE_CONTROL, "no-store");
    }
    response
}

/// A change must come from a console page of this host: a browser names
/// the page's origin on every post, and it must be this host's.
async fn same_origin(request: Request, next: Next) -> Response {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let headers = request.headers();
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or_default();
            let ours = host.is_some_and(|host| {
                origin
                    .strip_prefix("http://")
                    .or_else(|| origin.strip_prefix("https://"))
                    .is_some_and(|rest| rest.eq_ignore_ascii_case(host))
            });
            if !ours {
                return Refusal::page(
                    StatusCode::FORBIDDEN,
                    format!("a change to this console must come from its own pages, not from {origin:?}"),
                )
                .into_response();
            }
        }
    }
    next.run(request).await
}

/// JSON for a page, indented (arguments, grants, outputs).
fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}
