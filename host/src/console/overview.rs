//! The overview: what is loaded and in what state, the calls of the last
//! hour as a chart, what waits for a reviewer, and what the host holds.

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::session::Viewer;
use super::{render, Nav, Refusal, Section};
use crate::app::metrics::{MinuteCount, RECENT_MINUTES};
use crate::server::api::Shared;

/// One loaded plugin or workflow, as the overview lists it.
pub struct PluginRow {
    pub name: String,
    pub kind: &'static str,
    pub version: String,
    pub enabled: bool,
    pub tools: usize,
    pub signer: Option<String>,
}

/// The calls-per-minute chart, drawn on the server as SVG (no script).
pub struct Chart {
    pub bars: Vec<Bar>,
    /// The error rate as an SVG polyline's points.
    pub errors_line: String,
    pub peak: u64,
    pub calls: u64,
    pub errors: u64,
    /// Errors per hundred calls over the hour, one decimal.
    pub error_rate: String,
    pub width: u32,
    pub height: u32,
}

pub struct Bar {
    pub x: u32,
    pub y: u32,
    pub height: u32,
    /// Read by screen readers and shown on hover.
    pub label: String,
}

const BAR_WIDTH: u32 = 10;
const CHART_HEIGHT: u32 = 120;

impl Chart {
    fn of(minutes: &[MinuteCount]) -> Chart {
        let peak = minutes.iter().map(|m| m.calls).max().unwrap_or(0).max(1);
        let scale = |v: u64| (v * u64::from(CHART_HEIGHT) / peak) as u32;
        let bars = minutes
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let height = scale(m.calls);
                let ago = minutes.len() - 1 - i;
                Bar {
                    x: i as u32 * BAR_WIDTH,
                    y: CHART_HEIGHT - height,
                    height,
                    label: format!("{ago} min ago: {} calls, {} errors", m.calls, m.errors),
                }
            })
            .collect();
        let errors_line = minutes
            .iter()
            .enumerate()
            .map(|(i, m)| {
                // The error rate on the same height: 100 % at the top.
                // At most 100 %: the counters are read one after the other
                // while calls land, so errors can briefly outrun calls.
                let rate = (m.errors.min(m.calls) * 100).checked_div(m.calls).unwrap_or(0);
                let y = CHART_HEIGHT - (rate * u64::from(CHART_HEIGHT) / 100) as u32;
                format!("{},{y}", i as u32 * BAR_WIDTH + BAR_WIDTH / 2)
            })
            .collect::<Vec<_>>()
            .join(" ");
        let calls: u64 = minutes.iter().map(|m| m.calls).sum();
        let errors: u64 = minutes.iter().map(|m| m.errors).sum();
        let error_rate = if calls == 0 {
            "0.0".to_string()
        } else {
            format!("{:.1}", errors as f64 * 100.0 / calls as f64)
        };
        Chart {
            bars,
            errors_line,
            peak,
            calls,
            errors,
            error_rate,
            width: RECENT_MINUTES as u32 * BAR_WIDTH,
            height: CHART_HEIGHT,
        }
    }
}

#[derive(Template)]
#[template(path = "console/overview.html")]
struct OverviewPage {
    nav: Nav,
    plugins: Vec<PluginRow>,
    chart: Chart,
    pending: usize,
    instances_in_use: i64,
    instances_idle: usize,
    mcp_sessions: usize,
}

pub fn rows(state: &Shared) -> Vec<PluginRow> {
    let registry = state.app.runtime.plugins().registry();
    let enabled = |name: &str| !state.app.runtime.plugins().is_disabled(name);
    let mut rows: Vec<PluginRow> = registry
        .snapshot()
        .values()
        .map(|p| PluginRow {
            name: p.manifest.name.clone(),
            kind: "connector",
            version: p.manifest.version.to_string(),
            enabled: enabled(&p.manifest.name),
            tools: p.tools.len(),
            signer: p.signer.clone(),
        })
        .chain(registry.workflows().values().map(|w| PluginRow {
            name: w.name().to_string(),
            kind: "workflow",
            version: w.definition.version.to_string(),
            enabled: enabled(w.name()),
            tools: 1,
            signer: w.signer.clone(),
        }))
        .collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    rows
}

pub async fn page(viewer: Viewer, State(state): State<Shared>) -> Result<Response, Refusal> {
    let pending = state
        .app
        .approvals
        .pending()
        .await
        .map_err(|e| Refusal::from(crate::server::api::ApiError::from(e)))?
        .len();
    Ok(render(&OverviewPage {
        nav: Nav::new(&viewer, Section::Overview),
        plugins: rows(&state),
        chart: Chart::of(&state.app.metrics.last_hour()),
        pending,
        instances_in_use: state.app.metrics.instances_in_use(),
        instances_idle: state.app.runtime.warm_instances(),
        mcp_sessions: state.mcp_sessions.count().await,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_scales_to_its_busiest_minute() {
        let minutes: Vec<MinuteCount> = (0..60)
            .map(|i| MinuteCount {
                minute: i,
                calls: if i == 59 { 10 } else { i % 5 },
                errors: if i == 59 { 5 } else { 0 },
            })
            .collect();
        let chart = Chart::of(&minutes);
        assert_eq!(chart.bars.len(), 60);
        assert_eq!(chart.bars[59].height, CHART_HEIGHT);
        assert_eq!(chart.bars[59].y, 0);
        assert_eq!(chart.bars[0].height, 0);
        assert!(chart.errors_line.ends_with(&format!("595,{}", CHART_HEIGHT / 2)));
        assert_eq!(chart.calls, 10 + (0..59).map(|i| i % 5).sum::<u64>());
        assert!(chart.bars[59].label.starts_with("0 min ago: 10 calls, 5 errors"));
    }
}
