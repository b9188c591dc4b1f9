//! Stacked bar charts as plain SVG, computed the same way on the server and in the browser: no
//! chart library, nothing to load.

use std::collections::BTreeMap;

use leptos::prelude::*;

use perpetuo_types::{DAY_MS, SeriesPoint, format_day};

const PALETTE: [&str; 8] = ["#2f5bd3", "#e8833a", "#3fa66b", "#c0426c", "#8d5cd6", "#c7a529", "#2ba3b8", "#8a8f98"];
const MAX_SERIES: usize = 7;
const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 56.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 10.0;

/// What a chart measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    Requests,
    Cost,
}

impl Measure {
    fn value(self, p: &SeriesPoint) -> f64 {
        match self {
            Self::Requests => p.requests as f64,
            Self::Cost => p.cost_nanos as f64 / 1e9,
        }
    }

    fn format(self, v: f64) -> String {
        match self {
            Self::Requests => format!("{}", v.round() as i64),
            Self::Cost if v >= 1.0 => format!("${v:.2}"),
            Self::Cost if v == 0.0 => "$0".to_owned(),
            Self::Cost => format!("${v:.4}"),
        }
    }
}

/// Bars per day, stacked by group; the largest groups get colours, the rest share "other".
#[component]
pub fn StackedBars(
    title: String,
    points: Vec<SeriesPoint>,
    from_day: i64,
    to_day: i64,
    measure: Measure,
) -> impl IntoView {
    let days: Vec<i64> = (0..=((to_day - from_day) / DAY_MS).max(0)).map(|i| from_day + i * DAY_MS).collect();
    // Rank groups by their total to pick colours.
    let mut totals: BTreeMap<String, f64> = BTreeMap::new();
    for p in &points {
        *totals.entry(p.label.clone()).or_default() += measure.value(p);
    }
    let mut ranked: Vec<(String, f64)> = totals.into_iter().filter(|(_, v)| *v > 0.0).collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let named: Vec<String> = ranked.iter().take(MAX_SERIES).map(|(label, _)| label.clone()).collect();
    let has_other = ranked.len() > MAX_SERIES;
    let series_of = |label: &str| named.iter().position(|n| n == label).unwrap_or(MAX_SERIES);

    // day -> per-series values
    let mut stacks: BTreeMap<i64, Vec<f64>> = days.iter().map(|d| (*d, vec![0.0; MAX_SERIES + 1])).collect();
    for p in &points {
        if let Some(stack) = stacks.get_mut(&p.day) {
            stack[series_of(&p.label)] += measure.value(p);
        }
    }
    let max = stacks.values().map(|s| s.iter().sum::<f64>()).fold(0.0, f64::max);
    let plot_w = WIDTH - LEFT - 8.0;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let slot = plot_w / days.len().max(1) as f64;
    let bar = (slot * 0.7).max(1.0);
    let label_every = (days.len() / 8).max(1);

    let mut rects = Vec::new();
    for (i, (day, stack)) in stacks.iter().enumerate() {
        let x = LEFT + slot * i as f64 + (slot - bar) / 2.0;
        let mut y = TOP + plot_h;
        for (s, v) in stack.iter().enumerate() {
            if *v <= 0.0 || max <= 0.0 {
                continue;
            }
            let h = v / max * plot_h;
            y -= h;
            let name = named.get(s).cloned().unwrap_or_else(|| "other".to_owned());
            let tip = format!("{} · {}: {}", format_day(*day), name, measure.format(*v));
            rects.push(view! {
                <rect x=format!("{x:.1}") y=format!("{y:.1}") width=format!("{bar:.1}") height=format!("{h:.1}") fill=PALETTE[s.min(PALETTE.len() - 1)]>
                    <title>{tip}</title>
                </rect>
            });
        }
    }
    let x_labels: Vec<_> = days
        .iter()
        .enumerate()
        .filter(|(i, _)| i % label_every == 0)
        .map(|(i, day)| {
            let x = LEFT + slot * i as f64 + slot / 2.0;
            view! { <text x=format!("{x:.1}") y=format!("{:.1}", HEIGHT - 6.0) text-anchor="middle" font-size="10" fill="#5b6578">{format_day(*day)[5..].to_owned()}</text> }
        })
        .collect();
    let mut legend: Vec<(String, &'static str)> =
        named.iter().enumerate().map(|(i, n)| (n.clone(), PALETTE[i])).collect();
    if has_other {
        legend.push(("other".to_owned(), PALETTE[MAX_SERIES]));
    }
    let empty = max <= 0.0;
    let aria = format!(
        "{title}: {} over {} days",
        if empty { "no data".to_owned() } else { format!("peak {}", measure.format(max)) },
        days.len()
    );
    view! {
        <figure class="chart">
            <figcaption><strong>{title.clone()}</strong></figcaption>
            <svg viewBox=format!("0 0 {WIDTH} {HEIGHT}") role="img" aria-label=aria data-testid="usage-chart">
                <line x1=LEFT y1=TOP x2=LEFT y2=TOP + plot_h stroke="#d9dee7"/>
                <line x1=LEFT y1=TOP + plot_h x2=WIDTH - 8.0 y2=TOP + plot_h stroke="#d9dee7"/>
                <text x=LEFT - 6.0 y=TOP + 8.0 text-anchor="end" font-size="10" fill="#5b6578">{measure.format(max)}</text>
                <text x=LEFT - 6.0 y=TOP + plot_h text-anchor="end" font-size="10" fill="#5b6578">"0"</text>
                {rects}
                {x_labels}
                {empty.then(|| view! { <text x=WIDTH / 2.0 y=HEIGHT / 2.0 text-anchor="middle" font-size="13" fill="#5b6578">{match measure { Measure::Requests => "No requests in this period", Measure::Cost => "No priced requests in this period" }}</text> })}
            </svg>
            <p class="muted legend">
                {legend.into_iter().map(|(name, color)| view! {
                    <span class="legend-item"><span class="swatch" style=format!("background:{color}")></span>{name}</span>
                }).collect_view()}
            </p>
        </figure>
    }
}
