//! `/v1/plugins/{name}/grants`: the operator's grant of a plugin, both
//! sides of it (the file's and the API's, see [`crate::policy::grants`]),
//! replaced (`PUT`), merge-patched (`PATCH`, RFC 7396) or handed back to
//! the file (`DELETE`).

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;

use super::admin::describe;
use super::auth::{Admin, Reader};
use super::bodies::GrantView;
use super::{ApiError, Shared};
use crate::app::operator::{self, Actor};
use crate::config::grants::PluginPolicy;
use crate::plugins::registry::Loaded;

/// `?allow_unset=a,b`: the requested secrets and config keys a new grant
/// may leave unset on purpose.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantQuery {
    #[serde(default)]
    allow_unset: Option<String>,
}

impl GrantQuery {
    fn allow_unset(&self) -> Vec<String> {
        self.allow_unset
            .iter()
            .flat_map(|list| list.split(','))
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(str::to_string)
            .collect()
    }
}

/// The grant of `name` as the API shows it: which side is in force, both
/// sides, whether they differ, what the operator should know, and what
/// the plugin may do now.
fn view(state: &Shared, name: &str, loaded: Option<&Loaded>) -> GrantView {
    let grants = state.app.runtime.plugins().grant_state(name);
    let manifest = match loaded {
        Some(Loaded::Connector(p)) => Some(&*p.manifest),
        _ => None,
    };
    let warnings: Vec<String> = grants
        .warnings(name, manifest)
        .iter()
        .map(ToString::to_string)
        .collect();
    GrantView {
        plugin: name.to_string(),
        source: grants.source(),
        operator: grants.in_force(),
        differs: grants.differs(),
        file: grants.file,
        api: grants.api,
        warnings,
        plugin_state: loaded.map(|p| describe(state, p)),
    }
}

/// `GET`: both sides of the grant.
#[utoipa::path(
    get,
    path = "/v1/plugins/{name}/grants",
    tag = "grants",
    operation_id = "get_grant",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The plugin's name.")),
    responses(
        (status = 200, description = "The grant as it stands: which side is in force, both sides, and the plugin.", body = GrantView),
        (status = 404, response = super::responses::NotFound),
        super::responses::RoleRefusals,
    )
)]
pub async fn show(
    _: Reader,
    State(state): State<Shared>,
    Path(name): Path<String>,
) -> Result<Json<GrantView>, ApiError> {
    let p = operator::plugin(&state.app.runtime, &name)?;
    Ok(Json(view(&state, &name, Some(&p))))
}

/// `PUT`: replace the operator's grant. Secrets are shown as set or not,
/// never by value; one sent back as shown keeps its source.
#[utoipa::path(
    put,
    path = "/v1/plugins/{name}/grants",
    tag = "grants",
    operation_id = "replace_grant",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The plugin's name."), ("allow_unset" = Option<String>, Query, description = "Comma-separated requested secrets and config keys the new grant may leave unset on purpose.")),
    request_body(content = PluginPolicy, description = "The whole grant, as a `[plugins.<name>]` table of toolhost.toml in JSON (http, secrets, config, limits)."),
    responses(
        (status = 200, description = "The grant as it stands: which side is in force, both sides, and the plugin.", body = GrantView),
        (status = 400, response = super::responses::BadRequest),
        (status = 404, response = super::responses::NotFound),
        (status = 422, response = super::responses::Unprocessable),
        super::responses::JsonBodyRefusals,
    )
)]
pub async fn replace(
    Admin(admin): Admin,
    State(state): State<Shared>,
    Path(name): Path<String>,
    query: Result<Query<GrantQuery>, QueryRejection>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<GrantView>, ApiError> {
    let Query(query) = query?;
    let grant: PluginPolicy = super::error::object_body(body)?;
    let p = operator::change_grant(
        &state.app.runtime,
        &Actor::api(&admin.name),
        &name,
        grant,
        &query.allow_unset(),
    )
    .await?;
    Ok(Json(view(&state, &name, Some(&p))))
}

/// A JSON merge patch body (RFC 7396), sent as
/// `application/merge-patch+json` or `application/json`.
pub struct MergePatch(Value);

impl<S: Send + Sync> FromRequest<S> for MergePatch {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
        if !matches!(
            content_type.as_deref(),
            Some("application/merge-patch+json" | "application/json")
        ) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "a PATCH of a grant is a JSON merge patch: send it as Content-Type: application/merge-patch+json \
                 (or application/json)",
            ));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|e| ApiError::rejected(e.status(), e.body_text()))?;
        serde_json::from_slice(&bytes)
            .map(MergePatch)
            .map_err(|e| ApiError::bad_request(format!("the merge patch is not valid JSON: {e}")))
    }
}

/// `PATCH`: change only the fields the merge patch names (`null` removes
/// one), over the grant in force, whichever side's it is.
#[utoipa::path(
    patch,
    path = "/v1/plugins/{name}/grants",
    tag = "grants",
    operation_id = "patch_grant",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The plugin's name."), ("allow_unset" = Option<String>, Query, description = "Comma-separated requested secrets and config keys the new grant may leave unset on purpose.")),
    request_body(content = Object, content_type = "application/merge-patch+json", description = "An RFC 7396 JSON merge patch over the grant in force (`null` removes a field); `application/json` is taken too."),
    responses(
        (status = 200, description = "The grant as it stands: which side is in force, both sides, and the plugin.", body = GrantView),
        (status = 400, response = super::responses::BadRequest),
        (status = 404, response = super::responses::NotFound),
        (status = 422, response = super::responses::Unprocessable),
        super::responses::JsonBodyRefusals,
    )
)]
pub async fn patch(
    Admin(admin): Admin,
    State(state): State<Shared>,
    Path(name): Path<String>,
    query: Result<Query<GrantQuery>, QueryRejection>,
    MergePatch(patch): MergePatch,
) -> Result<Json<GrantView>, ApiError> {
    let Query(query) = query?;
    let actor = Actor::api(&admin.name);
    let p = operator::patch_grant(&state.app.runtime, &actor, &name, &patch, &query.allow_unset()).await?;
    Ok(Json(view(&state, &name, Some(&p))))
}

/// `DELETE`: hand the grant back to the file. It does not take the
/// plugin's grant away: it forgets the grant the API set, so the file's
/// (`[plugins.<name>]` in toolhost.toml, or none) is in force again at
/// once and owns the plugin's grant from now on. To take a grant away,
/// `PUT` an empty one (`{}`).
#[utoipa::path(
    delete,
    path = "/v1/plugins/{name}/grants",
    tag = "grants",
    operation_id = "reset_grant_to_file",
    summary = "Hand the grant back to the file (not a revocation)",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The plugin's name.")),
    responses(
        (status = 200, description = "The grant as it stands: which side is in force, both sides, and the plugin.", body = GrantView),
        (status = 404, response = super::responses::NotFound),
        super::responses::RoleRefusals,
    )
)]
pub async fn reset(
    Admin(admin): Admin,
    State(state): State<Shared>,
    Path(name): Path<String>,
) -> Result<Json<GrantView>, ApiError> {
    let loaded = state.app.runtime.plugins().registry().loaded(&name);
    let reset = operator::reset_grant(&state.app.runtime, &Actor::api(&admin.name), &name).await?;
    if !reset && loaded.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no plugin named {name:?}, and no grant set through the API for one"),
        ));
    }
    // What serves now carries the file's grant.
    let loaded = state.app.runtime.plugins().registry().loaded(&name);
    Ok(Json(view(&state, &name, loaded.as_ref())))
}
