//! One plugin's page: its manifest, the versions it has served (digests,
//! signers), the grant in effect and the operator's grant (editable),
//! switching it off and on, rolling back, and uploading a new bundle. Every
//! change goes through the admin API's own functions.

use askama::Template;
use axum::extract::multipart::MultipartRejection;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::session::{Right, Viewer};
use super::{done, pretty, render, Nav, Refusal, Section};
use crate::app::operator::{self, Actor};
use crate::config::grants::PluginPolicy;
use crate::model::version::VersionEntry;
use crate::plugins::registry::Loaded;
use crate::server::api::admin;
use crate::server::api::Shared;

pub struct ToolRow {
    pub name: String,
    pub description: String,
    pub risk: String,
}

pub struct VersionRow {
    pub entry: VersionEntry,
    /// The version serving now.
    pub serving: bool,
}

#[derive(Template)]
#[template(path = "console/plugin.html")]
struct PluginPage {
    nav: Nav,
    name: String,
    kind: &'static str,
    version: String,
    vendor: String,
    description: String,
    world: Option<String>,
    digest: String,
    manifest_digest: String,
    signer: Option<String>,
    enabled: bool,
    tools: Vec<ToolRow>,
    versions: Vec<VersionRow>,
    effective_grant: String,
    operator_grant: String,
    /// A previous version to go back to exists.
    can_roll_back: bool,
}

pub async fn page(viewer: Viewer, State(state): State<Shared>, Path(name): Path<String>) -> Result<Response, Refusal> {
    viewer.require(Right::ManagePlugins)?;
    let loaded = operator::plugin(&state.app.runtime, &name)?;
    let history = state
        .app
        .runtime
        .plugins()
        .history(&name)
        .await
        .map_err(|e| Refusal::page(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let digest = loaded.digest().to_string();
    let can_roll_back = history.iter().filter(|e| e.rolled_back.is_none()).count() > 1;
    let versions = history
        .into_iter()
        .rev()
        .map(|entry| VersionRow {
            serving: entry.digest == digest,
            entry,
        })
        .collect();
    let described = admin::describe(&state, &loaded);
    let operator_grant = serde_json::to_value(state.app.runtime.plugins().operator_grant(&name))
        .map(|g| pretty(&g))
        .unwrap_or_default();
    let (vendor, description, world, tools) = match &loaded {
        Loaded::Connector(p) => (
            p.manifest.vendor.clone(),
            p.manifest.description.clone(),
            Some(p.manifest.world.clone()),
            p.tools
                .iter()
                .map(|t| ToolRow {
                    name: t.name.clone(),
                    description: t.description.clone(),
                    risk: format!("{:?}", t.risk).to_lowercase(),
                })
                .collect(),
        ),
        Loaded::Workflow(w) => {
            let d = &w.definition;
            let summary = d.summary.clone().or_else(|| d.title.clone()).unwrap_or_default();
            (
                d.namespace.clone(),
                summary.clone(),
                None,
                vec![ToolRow {
                    name: w.name().to_string(),
                    description: summary,
                    // Each step is checked against the rules on its own.
                    risk: "per step".to_string(),
                }],
            )
        }
    };
    Ok(render(&PluginPage {
        nav: Nav::new(&viewer, Section::Overview),
        name: name.clone(),
        kind: loaded.kind().into(),
        version: loaded.version(),
        vendor,
        description,
        world,
        manifest_digest: loaded.manifest_digest().to_string(),
        digest,
        signer: described.signed_by.clone(),
        enabled: !state.app.runtime.plugins().is_disabled(&name),
        tools,
        versions,
        effective_grant: pretty(&serde_json::json!(described.effective_grant)),
        operator_grant,
        can_roll_back,
    }))
}

fn back(name: &str) -> String {
    format!("/console/plugins/{name}")
}

/// The checks every plugin change makes: an admin, this session's form.
fn admit(viewer: &Viewer, form: Result<Form<Change>, FormRejection>) -> Result<Change, Refusal> {
    viewer.require(Right::ManagePlugins)?;
    let Form(change) = form.map_err(|e| Refusal::page(StatusCode::BAD_REQUEST, e.body_text()))?;
    viewer.check_csrf(&change.csrf)?;
    Ok(change)
}

#[derive(Deserialize)]
pub struct Change {
    csrf: String,
    /// The operator grant, as JSON (the grant form only).
    #[serde(default)]
    grant: Option<String>,
}

pub async fn grant(
    viewer: Viewer,
    State(state): State<Shared>,
    Path(name): Path<String>,
    form: Result<Form<Change>, FormRejection>,
) -> Result<Response, Refusal> {
    let change = admit(&viewer, form)?;
    let outcome = async {
        let text = change.grant.unwrap_or_default();
        let grant: PluginPolicy = serde_json::from_str(&text)
            .map_err(|e| Refusal::page(StatusCode::UNPROCESSABLE_ENTITY, format!("the grant is not valid: {e}")))?;
        operator::change_grant(&state.app.runtime, &console_actor(&viewer), &name, grant, &[]).await?;
        Ok(format!("The grant of {name} is changed and serves from now on."))
    }
    .await;
    done(&viewer, &back(&name), outcome)
}

async fn switch(
    viewer: Viewer,
    state: Shared,
    name: String,
    form: Result<Form<Change>, FormRejection>,
    on: bool,
) -> Result<Response, Refusal> {
    admit(&viewer, form)?;
    let outcome = operator::set_enabled(&state.app.runtime, &console_actor(&viewer), &name, on)
        .await
        .map(|_| format!("{name} is {}.", if on { "enabled" } else { "disabled" }))
        .map_err(Refusal::from);
    done(&viewer, &back(&name), outcome)
}

pub async fn enable(
    viewer: Viewer,
    State(state): State<Shared>,
    Path(name): Path<String>,
    form: Result<Form<Change>, FormRejection>,
) -> Result<Response, Refusal> {
    switch(viewer, state, name, form, true).await
}

pub async fn disable(
    viewer: Viewer,
    State(state): State<Shared>,
    Path(name): Path<String>,
    form: Result<Form<Change>, FormRejection>,
) -> Result<Response, Refusal> {
    switch(viewer, state, name, form, false).await
}

pub async fn rollback(
    viewer: Viewer,
    State(state): State<Shared>,
    Path(name): Path<String>,
    form: Result<Form<Change>, FormRejection>,
) -> Result<Response, Refusal> {
    admit(&viewer, form)?;
    let outcome = operator::roll_back(&state.app.runtime, &console_actor(&viewer), &name)
        .await
        .map(|p| format!("{name} is rolled back to version {}.", p.version()))
        .map_err(Refusal::from);
    done(&viewer, &back(&name), outcome)
}

/// A bundle from the upload form: the same fields as `PUT /v1/plugins/{name}`,
/// plus the session's CSRF token.
pub async fn upload(
    viewer: Viewer,
    State(state): State<Shared>,
    Path(name): Path<String>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, Refusal> {
    viewer.require(Right::ManagePlugins)?;
    let multipart = multipart.map_err(|e| Refusal::page(StatusCode::BAD_REQUEST, e.body_text()))?;
    let (parts, csrf) = admin::BundleParts::read(multipart, Some("csrf")).await?;
    viewer.check_csrf(csrf.as_deref().unwrap_or_default())?;
    let outcome = parts
        .install(&state, &console_actor(&viewer), &name)
        .await
        .map(|p| format!("{name} {} is uploaded and serves now.", p.version()))
        .map_err(Refusal::from);
    done(&viewer, &back(&name), outcome)
}

/// The signed-in operator, acting through the console.
fn console_actor(viewer: &Viewer) -> Actor<'_> {
    Actor {
        name: &viewer.principal.name,
        via: crate::model::audit::Interface::Console,
    }
}
