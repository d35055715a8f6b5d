//! The report's charts as SVG documents, drawn on the server with `plotters`: no script
//! runs in the admin's browser, and a chart can be saved or mailed as it is.

use std::fmt::Display;

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::{Bucket, Report};

/// Colours told apart by people with any common colour blindness (Okabe and Ito).
pub mod palette {
    use plotters::style::RGBColor;

    pub const CONFIRMED: RGBColor = RGBColor(0x00, 0x72, 0xB2);
    pub const JOINED: RGBColor = RGBColor(0x00, 0x9E, 0x73);
    pub const UNSUBSCRIBED: RGBColor = RGBColor(0xE6, 0x9F, 0x00);
    pub const BOUNCED: RGBColor = RGBColor(0xD5, 0x5E, 0x00);
    pub const COMPLAINED: RGBColor = RGBColor(0xCC, 0x79, 0xA7);
    pub const FAILED: RGBColor = RGBColor(0x56, 0xB4, 0xE9);
    pub const CLICKED: RGBColor = RGBColor(0x00, 0x9E, 0x73);
    pub const NOW: RGBColor = RGBColor(0x00, 0x72, 0xB2);
}

const WIDTH: u32 = 760;
const HEIGHT: u32 = 320;
const FONT: &str = "sans-serif";
const INK: RGBColor = RGBColor(0x1d, 0x23, 0x27);

/// The charts there are, by the name in their address (`/admin/insights/{name}.svg`).
pub const NAMES: &[&str] = &["growth", "flows", "editions", "clicks", "sources"];

/// Draws the chart called `name`, or None if there is no such chart.
pub fn draw(report: &Report, name: &str) -> Option<anyhow::Result<String>> {
    Some(match name {
        "growth" => growth(report),
        "flows" => flows(report),
        "editions" => editions(report),
        "sources" => sources(report),
        "clicks" => clicks(report),
        _ => return None,
    })
}

fn plot_error(e: impl Display) -> anyhow::Error {
    anyhow::anyhow!("Failed to draw a chart: {e}")
}

/// Renders into an SVG string, then gives it a title and description for screen readers
/// and lets it scale to the width it is shown at.
fn svg(
    title: &str,
    desc: &str,
    paint: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> anyhow::Result<()>,
) -> anyhow::Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        paint(&root)?;
        root.present().map_err(plot_error)?;
    }
    let open_end = out
        .find('>')
        .ok_or_else(|| anyhow::anyhow!("plotters wrote no <svg> element"))?;
    let (open, rest) = out.split_at(open_end);
    let open = open.replacen(
        "<svg ",
        "<svg role=\"img\" aria-labelledby=\"chart-title chart-desc\" preserveAspectRatio=\"xMinYMin meet\" ",
        1,
    );
    Ok(format!(
        "{open}><title id=\"chart-title\">{}</title><desc id=\"chart-desc\">{}</desc>{}",
        escape(title),
        escape(desc),
        &rest[1..]
    ))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A chart with its caption, margins and axes' room.
fn frame<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    caption: impl AsRef<str>,
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
) -> anyhow::Result<Chart<'a, 'b>> {
    ChartBuilder::on(root)
        .caption(caption, (FONT, 18).into_font().color(&INK))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(56)
        .build_cartesian_2d(x, y)
        .map_err(plot_error)
}

/// Light horizontal lines, and `x_labels` labels along the bottom.
fn axes(
    chart: &mut Chart<'_, '_>,
    x_labels: usize,
    x_label: &dyn Fn(&f64) -> String,
    y_label: &dyn Fn(&f64) -> String,
) -> anyhow::Result<()> {
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(x_labels)
        .x_label_formatter(x_label)
        .y_label_formatter(y_label)
        .label_style((FONT, 12).into_font().color(&INK))
        .light_line_style(TRANSPARENT)
        .bold_line_style(INK.mix(0.12))
        .draw()
        .map_err(plot_error)
}

/// The series' names and colours, top left, where [`top`] left room for them.
fn legend<'a, 'b: 'a>(chart: &mut Chart<'a, 'b>) -> anyhow::Result<()> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font((FONT, 12).into_font().color(&INK))
        .background_style(WHITE.mix(0.9))
        .border_style(INK.mix(0.3))
        .draw()
        .map_err(plot_error)
}

/// At most `max` evenly spaced labels of `labels`, the rest blank.
fn sparse<'a>(labels: &'a [String], max: usize) -> impl Fn(&f64) -> String + 'a {
    let step = labels.len().div_ceil(max.max(1)).max(1);
    move |x: &f64| {
        let i = x.floor();
        if i < 0.0 || (x - i).abs() > 1e-9 {
            return String::new();
        }
        let i = i as usize;
        if i.is_multiple_of(step) {
            labels.get(i).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    }
}

fn legend_box(colour: RGBColor) -> impl Fn((i32, i32)) -> Rectangle<(i32, i32)> {
    move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], colour.filled())
}

/// A rounded-up top for an axis holding `max`, never 0, leaving the upper part of the
/// chart to the legend.
fn top(max: f64) -> f64 {
    if max <= 0.0 { 1.0 } else { (max * 1.5).ceil() }
}

/// A count's label: whole numbers only (the axis may put a tick between two).
fn whole(y: &f64) -> String {
    if (y - y.round()).abs() < 1e-9 {
        format!("{y:.0}")
    } else {
        String::new()
    }
}

fn period_word(report: &Report) -> &'static str {
    match report.bucket {
        Bucket::Day => "day",
        Bucket::Week => "week",
    }
}

/// Confirmed subscribers at the end of each period.
fn growth(report: &Report) -> anyhow::Result<String> {
    let labels: Vec<String> = report.growth.iter().map(|p| p.label.clone()).collect();
    let max = report.growth.iter().map(|p| p.confirmed).max().unwrap_or(0) as f64;
    let first = report.growth.first().map_or(0, |p| p.confirmed);
    let desc = format!(
        "Confirmed subscribers by {} from {} to {}: {} at the start, {} at the end.",
        period_word(report),
        report.from,
        report.to,
        first,
        report.growth.last().map_or(0, |p| p.confirmed)
    );
    svg("Confirmed subscribers", &desc, |root| {
        let n = labels.len().max(1) as f64;
        let mut chart = frame(root, "Confirmed subscribers", 0f64..(n - 1.0).max(1.0), 0f64..top(max))?;
        axes(&mut chart, labels.len().min(6), &sparse(&labels, labels.len()), &whole)?;
        let points: Vec<(f64, f64)> = report
            .growth
            .iter()
            .enumerate()
            .map(|(i, p)| (i as f64, p.confirmed as f64))
            .collect();
        chart
            .draw_series(
                AreaSeries::new(points, 0.0, palette::CONFIRMED.mix(0.18))
                    .border_style(palette::CONFIRMED.stroke_width(2)),
            )
            .map_err(plot_error)?
            .label("Confirmed")
            .legend(legend_box(palette::CONFIRMED));
        legend(&mut chart)?;
        Ok(())
    })
}

/// Joins above the line and departures (unsubscribed, bounced, complained) stacked below
/// it, per period.
fn flows(report: &Report) -> anyhow::Result<String> {
    let labels: Vec<String> = report.growth.iter().map(|p| p.label.clone()).collect();
    let up = report.growth.iter().map(|p| p.joined).max().unwrap_or(0) as f64;
    let down = report
        .growth
        .iter()
        .map(|p| p.unsubscribed + p.bounced + p.complained)
        .max()
        .unwrap_or(0) as f64;
    let sum = |f: fn(&super::Period) -> i64| report.growth.iter().map(f).sum::<i64>();
    let desc = format!(
        "Per {} from {} to {}: {} joined, {} unsubscribed, {} bounced, {} complained.",
        period_word(report),
        report.from,
        report.to,
        sum(|p| p.joined),
        sum(|p| p.unsubscribed),
        sum(|p| p.bounced),
        sum(|p| p.complained)
    );
    svg("Joined and left", &desc, |root| {
        let n = labels.len() as f64;
        let mut chart = frame(
            root,
            format!("Joined and left, per {}", period_word(report)),
            -0.5f64..(n - 0.5).max(0.5),
            -top(down)..top(up),
        )?;
        axes(&mut chart, labels.len().min(6), &sparse(&labels, labels.len()), &|y| {
            whole(&y.abs())
        })?;
        let half = 0.38;
        let bar = |i: usize, from: f64, to: f64, colour: RGBColor| {
            let x = i as f64;
            Rectangle::new([(x - half, from), (x + half, to)], colour.filled())
        };
        let joined = report.growth.iter().enumerate().filter(|(_, p)| p.joined > 0);
        chart
            .draw_series(joined.map(|(i, p)| bar(i, 0.0, p.joined as f64, palette::JOINED)))
            .map_err(plot_error)?
            .label("Joined")
            .legend(legend_box(palette::JOINED));
        // Stacked below zero: unsubscribed nearest the line, then bounced, then complained.
        type Layer = fn(&super::Period) -> (i64, i64);
        let layers: [(&str, RGBColor, Layer); 3] = [
            ("Unsubscribed", palette::UNSUBSCRIBED, |p| (0, p.unsubscribed)),
            ("Bounced", palette::BOUNCED, |p| (p.unsubscribed, p.bounced)),
            ("Complained", palette::COMPLAINED, |p| {
                (p.unsubscribed + p.bounced, p.complained)
            }),
        ];
        for (name, colour, part) in layers {
            let bars = report.growth.iter().enumerate().filter_map(|(i, p)| {
                let (below, n) = part(p);
                (n > 0).then(|| bar(i, -(below as f64), -((below + n) as f64), colour))
            });
            chart
                .draw_series(bars)
                .map_err(plot_error)?
                .label(name)
                .legend(legend_box(colour));
        }
        chart
            .draw_series(LineSeries::new([(-0.5, 0.0), ((n - 0.5).max(0.5), 0.0)], INK.mix(0.6)))
            .map_err(plot_error)?;
        legend(&mut chart)?;
        Ok(())
    })
}

/// For each of the latest editions, the share of its messages that failed, bounced or
/// drew a complaint, and of its recipients who unsubscribed after it.
fn editions(report: &Report) -> anyhow::Result<String> {
    let labels: Vec<String> = report.editions.iter().map(|e| format!("#{}", e.id)).collect();
    type Part = fn(&super::Rates) -> f64;
    let series: [(&str, RGBColor, Part); 4] = [
        ("Failed", palette::FAILED, |r| r.failed),
        ("Bounced", palette::BOUNCED, |r| r.bounced),
        ("Complained", palette::COMPLAINED, |r| r.complained),
        ("Unsubscribed after", palette::UNSUBSCRIBED, |r| r.unsubscribed_after),
    ];
    let max = report
        .editions
        .iter()
        .flat_map(|e| series.iter().map(move |(_, _, part)| part(&e.rates)))
        .fold(0.0, f64::max);
    let desc = match report.editions.last() {
        Some(e) => format!(
            "The latest {} editions. The last, #{} \"{}\", went to {} recipients: {} failed, {} bounced, {} complained, {} unsubscribed after it.",
            report.editions.len(),
            e.id,
            e.subject,
            e.sent,
            e.failed,
            e.bounced,
            e.complained,
            e.unsubscribed_after
        ),
        None => "No edition has been sent yet.".to_owned(),
    };
    svg("What each edition came to", &desc, |root| {
        let n = labels.len() as f64;
        let y_top = if max <= 0.0 {
            1.0
        } else {
            (max * 1.5 * 10.0).ceil() / 10.0
        };
        let mut chart = frame(
            root,
            "Each edition: share of recipients (%)",
            -0.5f64..(n - 0.5).max(0.5),
            0f64..y_top,
        )?;
        axes(&mut chart, labels.len().max(1), &sparse(&labels, 12), &|y| {
            format!("{y:.1}%")
        })?;
        let width = 0.8 / series.len() as f64;
        for (k, (name, colour, part)) in series.iter().enumerate() {
            let bars = report.editions.iter().enumerate().filter_map(|(i, e)| {
                let share = part(&e.rates);
                let x = i as f64 - 0.4 + k as f64 * width;
                (share > 0.0).then(|| Rectangle::new([(x, 0.0), (x + width * 0.9, share)], colour.filled()))
            });
            chart
                .draw_series(bars)
                .map_err(plot_error)?
                .label(*name)
                .legend(legend_box(*colour));
        }
        legend(&mut chart)?;
        Ok(())
    })
}

/// Confirmed subscribers now and joins within the report, by how they reached the list.
fn sources(report: &Report) -> anyhow::Result<String> {
    let labels: Vec<String> = report.sources.iter().map(|s| s.source.as_str().to_owned()).collect();
    let max = report
        .sources
        .iter()
        .map(|s| s.confirmed.max(s.joined))
        .max()
        .unwrap_or(0) as f64;
    let desc = report
        .sources
        .iter()
        .map(|s| format!("{}: {} confirmed, {} joined", s.source, s.confirmed, s.joined))
        .collect::<Vec<_>>()
        .join("; ");
    svg(
        "Where subscribers come from",
        &format!("{desc}, from {} to {}.", report.from, report.to),
        |root| {
            let n = labels.len() as f64;
            let mut chart = frame(
                root,
                "Where subscribers come from",
                -0.5f64..(n - 0.5).max(0.5),
                0f64..top(max),
            )?;
            axes(&mut chart, labels.len().max(1), &sparse(&labels, 12), &whole)?;
            type Part = fn(&super::SourceLine) -> i64;
            let series: [(String, RGBColor, Part, f64); 2] = [
                ("Confirmed now".to_owned(), palette::NOW, |s| s.confirmed, -0.36),
                (
                    format!("Joined in {} days", report.days),
                    palette::JOINED,
                    |s| s.joined,
                    0.02,
                ),
            ];
            for (name, colour, part, offset) in series {
                let bars = report.sources.iter().enumerate().filter_map(|(i, s)| {
                    let x = i as f64 + offset;
                    (part(s) > 0).then(|| Rectangle::new([(x, 0.0), (x + 0.34, part(s) as f64)], colour.filled()))
                });
                chart
                    .draw_series(bars)
                    .map_err(plot_error)?
                    .label(name)
                    .legend(legend_box(colour));
            }
            legend(&mut chart)?;
            Ok(())
        },
    )
}

/// For each of the latest editions, the share of its readers who clicked a link (or, when
/// clicks are anonymous, clicks per 100 messages): only with `[tracking] clicks` on.
fn clicks(report: &Report) -> anyhow::Result<String> {
    let labels: Vec<String> = report.editions.iter().map(|e| format!("#{}", e.id)).collect();
    let named = report.tracking != "anonymous";
    let value = |e: &super::EditionOutcome| {
        if named {
            e.rates.clicked
        } else {
            super::percent(e.clicks, e.sent)
        }
    };
    let (title, caption) = if named {
        ("Readers who clicked", "Each edition: readers who clicked a link (%)")
    } else {
        ("Clicks per 100 messages", "Each edition: clicks per 100 messages")
    };
    let max = report.editions.iter().map(value).fold(0.0, f64::max);
    let desc = match (report.tracking, report.editions.last()) {
        ("off", _) => "Click tracking is off ([tracking] clicks).".to_owned(),
        (_, Some(e)) => format!(
            "The latest {} editions. The last, #{}, had {} clicks from {} messages; {} readers clicked.",
            report.editions.len(),
            e.id,
            e.clicks,
            e.sent,
            if named {
                e.clickers.to_string()
            } else {
                "no record of which".to_owned()
            }
        ),
        (_, None) => "No edition has been sent yet.".to_owned(),
    };
    svg(title, &desc, |root| {
        let n = labels.len() as f64;
        let y_top = if max <= 0.0 { 1.0 } else { (max * 1.5).ceil() };
        let mut chart = frame(root, caption, -0.5f64..(n - 0.5).max(0.5), 0f64..y_top)?;
        axes(&mut chart, labels.len().max(1), &sparse(&labels, 12), &|y| {
            format!("{y:.0}%")
        })?;
        let bars = report.editions.iter().enumerate().filter_map(|(i, e)| {
            let x = i as f64;
            (value(e) > 0.0).then(|| Rectangle::new([(x - 0.3, 0.0), (x + 0.3, value(e))], palette::CLICKED.filled()))
        });
        chart
            .draw_series(bars)
            .map_err(plot_error)?
            .label(title)
            .legend(legend_box(palette::CLICKED));
        legend(&mut chart)?;
        Ok(())
    })
}
