//! The operator API: what is loaded, what it may do, and switching it off.

use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::json;
use utoipa::ToSchema;

use super::auth::{Admin, Reader};
use super::bodies::{ConnectorGrant, EffectiveGrant, HttpReach, PluginView, Unloaded, Versions, WorkflowGrant};
use super::responses::{BadRequest, Conflict, NotFound, Unprocessable};
use super::{ApiError, Shared};
use crate::app::operator::{self, Actor};
use crate::plugins::bundle::Bundle;
use crate::plugins::kind::Kind;
use crate::plugins::plugin::Plugin;
use crate::plugins::registry::Loaded;
use crate::workflow::Workflow;

pub fn describe(state: &Shared, loaded: &Loaded) -> PluginView {
    match loaded {
        Loaded::Connector(p) => describe_connector(state, p),
        Loaded::Workflow(w) => describe_workflow(state, w),
    }
}

fn describe_workflow(state: &Shared, w: &Workflow) -> PluginView {
    let d = &w.definition;
    PluginView {
        name: d.name.clone(),
        kind: Kind::Workflow,
        version: d.version.to_string(),
        vendor: d.namespace.clone(),
        world: None,
        digest: w.digest.clone(),
        manifest_digest: w.digest.clone(),
        signed_by: w.signer.clone(),
        compiled: None,
        state: operator::enabled(&state.app.runtime, &d.name),
        tools: vec![d.name.clone()],
        calls: Some(d.tools.iter().cloned().collect()),
        effective_grant: EffectiveGrant::Workflow(WorkflowGrant {
            tools: w.granted.iter().cloned().collect(),
        }),
        ungranted: Some(w.ungranted().into_iter().map(str::to_string).collect()),
    }
}

fn describe_connector(state: &Shared, p: &Plugin) -> PluginView {
    let g = &p.context.grant;
    PluginView {
        name: p.manifest.name.clone(),
        kind: Kind::Connector,
        version: p.manifest.version.to_string(),
        vendor: p.manifest.vendor.clone(),
        world: Some(p.manifest.world.clone()),
        digest: p.digest.clone(),
        manifest_digest: p.manifest_digest.clone(),
        signed_by: p.signer.clone(),
        compiled: Some(json!(p.source)),
        state: operator::enabled(&state.app.runtime, &p.manifest.name),
        tools: p.tools.iter().map(|t| t.name.clone()).collect(),
        calls: None,
        effective_grant: EffectiveGrant::Connector(ConnectorGrant {
            http: g
                .http
                .iter()
                .map(|r| HttpReach {
                    origin: format!("{:?}", r.origin),
                    methods: r.methods.clone(),
                    allow_private: json!(r.allow_private),
                })
                .collect(),
            secrets: g.secrets.keys().cloned().collect(),
            config: g.config.keys().cloned().collect(),
            kv_quota_bytes: g.kv_quota_bytes,
            memory_bytes: g.memory_bytes,
            timeout_ms: g.timeout.as_millis() as u64,
            max_concurrency: g.max_concurrency,
        }),
        ungranted: None,
    }
}

pub fn plugin(state: &Shared, name: &str) -> Result<Loaded, ApiError> {
    Ok(operator::plugin(&state.app.runtime, name)?)
}

/// Every plugin loaded: connectors and workflows, their versions,
/// digests, signers, state, tools and the grant in effect.
#[utoipa::path(
    get,
    path = "/v1/plugins",
    tag = "plugins",
    operation_id = "list_plugins",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One object per plugin.", body = [PluginView]),
        super::responses::RoleRefusals,
    )
)]
pub async fn list(_: Reader, State(state): State<Shared>) -> Json<Vec<PluginView>> {
    let registry = state.app.runtime.plugins().registry();
    let connectors = registry.snapshot();
    let workflows = registry.workflows();
    Json(
        connectors
            .values()
            .map(|p| describe_connector(&state, p))
            .chain(workflows.values().map(|w| describe_workflow(&state, w)))
            .collect(),
    )
}

/// Switch a plugin off: its tools are no longer listed or callable.
#[utoipa::path(
    post,
    path = "/v1/plugins/{name}/disable",
    tag = "plugins",
    operation_id = "disable_plugin",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The plugin's name.")),
    responses(
        (status = 200, description = "The plugin, as `GET /v1/plugins` shows it.", body = PluginView),
        (status = 404, response = NotFound),
        super::responses::RoleRefusals,
    )
)]
pub async fn disable(
    Admin(admin): Admin,
    State(state): State<Shared>,
    Path(name): Path<String>,
) -> Result<Json<PluginView>, ApiError> {
    let p = operator::set_enabled(&state.app.runtime, &Actor::api(&admin.name), &name, false).await?;
    Ok(Json(describe(&state, &p)))
}

/// Switch a plugin back on.
#[utoipa::path(
    post,
    path = "/v1/plugins/{name}/enable",
    tag = "plugins",
    operation_id = "enable_plugin",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The plugin's name.")),
    responses(
        (status = 200, description = "The plugin, as `GET /v1/plugins` shows it.", body = PluginView),
        (status = 404, response = NotFound),
        super::responses::RoleRefusals,
    )
)]
pub async fn enable(
    Admin(admin): Admin,
    State(state): State<Shared>,
    Path(name): Path<String>,
) -> Result<Json<PluginView>, ApiError> {
    let p = operator::set_enabled(&state.app.runtime, &Actor::api(&admin.name), &name, true).await?;
    Ok(Json(describe(&state, &p)))
}

/// `PUT /v1/plugins/{name}`: a bundle as multipart form fields `manifest`
/// (connector.toml), `component` (the .wasm) and optionally `signature`
/// (connector.sig) and `sha256` (the component's digest, checked on arrival);
/// or, for a workflow, `workflow` (workflow.yaml) and optionally `signature`
/// (workflow.sig) and `sha256` (the document's digest). It goes through the
/// same load path as the plugins folder.
#[utoipa::path(
    put,
    path = "/v1/plugins/{name}",
    tag = "plugins",
    operation_id = "upload_plugin",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The plugin's name.")),
    request_body(content = BundleParts, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "Loaded and serving: the plugin, as `GET /v1/plugins` shows it.", body = PluginView),
        (status = 400, response = BadRequest),
        (status = 413, response = super::responses::PayloadTooLarge),
        (status = 422, response = Unprocessable),
        super::responses::RoleRefusals,
    )
)]
pub async fn upload(
    Admin(admin): Admin,
    State(state): State<Shared>,
    Path(name): Path<String>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<PluginView>, ApiError> {
    let multipart = multipart.map_err(|e| ApiError::rejected(e.status(), e.body_text()))?;
    let (parts, _) = BundleParts::read(multipart, None).await?;
    let plugin = parts.install(&state, &Actor::api(&admin.name), &name).await?;
    Ok(Json(describe(&state, &plugin)))
}

/// An uploaded bundle's form fields, as sent: a connector (`manifest`,
/// `component`) or a workflow (`workflow`).
#[derive(Default, ToSchema)]
pub struct BundleParts {
    /// connector.toml.
    manifest: Option<String>,
    /// The component (.wasm).
    #[schema(value_type = Option<String>, format = Binary)]
    component: Option<Vec<u8>>,
    /// connector.sig or workflow.sig (ed25519), when the host requires signed bundles.
    signature: Option<String>,
    /// The component's (or workflow document's) SHA-256, hex: checked on arrival.
    sha256: Option<String>,
    /// workflow.yaml.
    workflow: Option<String>,
}

impl BundleParts {
    /// Read the form; `extra` names one more text field the caller wants
    /// (the console's CSRF token), returned beside the parts. A file input
    /// left empty in a browser form arrives as an empty field: it counts as
    /// absent.
    pub async fn read(
        mut multipart: Multipart,
        extra: Option<&str>,
    ) -> Result<(BundleParts, Option<String>), ApiError> {
        let mut parts = BundleParts::default();
        let mut extra_value = None;
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|e| ApiError::rejected(e.status(), e.body_text()))?
        {
            let field_name = field.name().unwrap_or_default().to_string();
            let bytes = field
                .bytes()
                .await
                .map_err(|e| ApiError::rejected(e.status(), e.body_text()))?;
            if bytes.is_empty() {
                continue;
            }
            let text = || {
                String::from_utf8(bytes.to_vec())
                    .map_err(|_| ApiError::bad_request(format!("field `{field_name}` must be UTF-8 text")))
            };
            match field_name.as_str() {
                "manifest" => parts.manifest = Some(text()?),
                "signature" => parts.signature = Some(text()?),
                "sha256" => parts.sha256 = Some(text()?),
                "component" => parts.component = Some(bytes.to_vec()),
                "workflow" => parts.workflow = Some(text()?),
                other if Some(other) == extra => extra_value = Some(text()?),
                other => {
                    return Err(ApiError::bad_request(format!(
                        "unknown field `{other}`; expected manifest, component, workflow, signature, sha256"
                    )))
                }
            }
        }
        Ok((parts, extra_value))
    }

    /// Check an uploaded bundle and install it as `name` (for the API and
    /// the console).
    pub async fn install(self, state: &Shared, actor: &Actor<'_>, name: &str) -> Result<Loaded, ApiError> {
        let parts = self;
        let refused = |e: &dyn std::fmt::Display| {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bundle_refused", e.to_string())
        };
        let bundle = match (parts.workflow, parts.manifest, parts.component) {
            (Some(document), None, None) => {
                Bundle::workflow(document, parts.signature, crate::workflow::DOCUMENT_FILE).map_err(|e| refused(&e))?
            }
            (Some(_), _, _) => {
                return Err(ApiError::bad_request(
                    "a bundle is a connector (`manifest`, `component`) or a workflow (`workflow`), not both",
                ))
            }
            (None, manifest, component) => {
                let manifest =
                    manifest.ok_or_else(|| ApiError::bad_request("missing field `manifest` (connector.toml)"))?;
                let component =
                    component.ok_or_else(|| ApiError::bad_request("missing field `component` (the .wasm)"))?;
                Bundle::from_parts(manifest, component, parts.signature).map_err(|e| refused(&e))?
            }
        };
        Ok(operator::install(&state.app.runtime, actor, name, bundle, parts.sha256.as_deref()).await?)
    }
}

/// `DELETE /v1/plugins/{name}`: unload once the calls in flight are done,
/// and remove its folder, so a restart does not bring it back.
#[utoipa::path(
    delete,
    path = "/v1/plugins/{name}",
    tag = "plugins",
    operation_id = "unload_plugin",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The plugin's name.")),
    responses(
        (status = 200, description = "Unloaded.", body = Unloaded),
        (status = 404, response = NotFound),
        super::responses::RoleRefusals,
    )
)]
pub async fn unload(
    Admin(admin): Admin,
    State(state): State<Shared>,
    Path(name): Path<String>,
) -> Result<Json<Unloaded>, ApiError> {
    let drained = operator::remove(&state.app.runtime, &Actor::api(&admin.name), &name).await?;
    Ok(Json(Unloaded {
        plugin: name,
        unloaded: true,
        drained,
    }))
}

/// `POST /v1/plugins/{name}/rollback`: the previous version, same swap.
#[utoipa::path(
    post,
    path = "/v1/plugins/{name}/rollback",
    tag = "plugins",
    operation_id = "rollback_plugin",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The plugin's name.")),
    responses(
        (status = 200, description = "The previous version serves: the plugin, as `GET /v1/plugins` shows it.", body = PluginView),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
        super::responses::RoleRefusals,
    )
)]
pub async fn rollback(
    Admin(admin): Admin,
    State(state): State<Shared>,
    Path(name): Path<String>,
) -> Result<Json<PluginView>, ApiError> {
    let plugin = operator::roll_back(&state.app.runtime, &Actor::api(&admin.name), &name).await?;
    Ok(Json(describe(&state, &plugin)))
}

/// `GET /v1/plugins/{name}/versions`: what it has served, oldest first.
#[utoipa::path(
    get,
    path = "/v1/plugins/{name}/versions",
    tag = "plugins",
    operation_id = "plugin_versions",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The plugin's name.")),
    responses(
        (status = 200, description = "What it has served, oldest first.", body = Versions),
        (status = 404, response = NotFound),
        super::responses::RoleRefusals,
    )
)]
pub async fn versions(
    _: Reader,
    State(state): State<Shared>,
    Path(name): Path<String>,
) -> Result<Json<Versions>, ApiError> {
    let history = state
        .app
        .runtime
        .plugins()
        .history(&name)
        .await
        .map_err(ApiError::internal)?;
    if history.is_empty() && state.app.runtime.plugins().registry().loaded(&name).is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no plugin named {name:?}"),
        ));
    }
    Ok(Json(Versions {
        plugin: name,
        versions: history,
    }))
}
