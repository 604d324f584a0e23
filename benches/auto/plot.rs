//! The plot of the worker count over time for the mixed workloads: one panel per order.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::trace::Trace;

/// Where zero sits on the logarithmic axis.
const ZERO: f64 = 0.8;

/// One panel: its title, the trace, the label of its batch switch (`"I/O → CPU"`), and where
/// the time axis ends if not at the end of the trace (a block that hung).
pub(crate) struct Panel<'a> {
    pub title: String,
    pub trace: &'a Trace,
    pub switch: &'a str,
    pub until_ms: Option<f64>,
}

/// Draws the panels one above the other into `path`, with `cores` for the `2 × cores` line.
pub(crate) fn write_workers_svg(
    panels: &[Panel],
    cores: usize,
    path: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (860, 330 * panels.len() as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    for (area, panel) in root.split_evenly((panels.len(), 1)).iter().zip(panels) {
        draw_panel(area, panel, cores)?;
    }
    root.present()?;
    Ok(())
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    panel: &Panel,
    cores: usize,
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    let trace = panel.trace;
    let end = panel.until_ms.unwrap_or_else(|| {
        trace
            .samples
            .last()
            .map_or(trace.wall_ms, |&(t, _)| t)
            .max(trace.wall_ms)
            * 1.02
    });
    let highest = trace
        .samples
        .iter()
        .map(|&(_, n)| n)
        .chain(trace.decisions.iter().map(|d| d.target.max(d.started)))
        .fold(2 * cores, usize::max);
    let top = (highest as f64 * 1.6).max(10.0);
    let y = |n: usize| (n as f64).max(ZERO);

    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(0f64..end, (ZERO..top).log_scale())?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .x_desc("milliseconds since the block started")
        .y_desc("workers (log scale)")
        .y_label_formatter(&|v| {
            if *v < 0.95 {
                "0".to_string()
            } else {
                format!("{v:.0}")
            }
        })
        .draw()?;

    let blue = RGBColor(31, 119, 180);
    let red = RGBColor(214, 39, 40);
    let grey = BLACK.mix(0.45);

    // 2 × cores: the CPU-bound target's cap on workers alive.
    let cap = (2 * cores) as f64;
    let orange = RGBColor(255, 127, 14);
    chart
        .draw_series(DashedLineSeries::new(
            [(0.0, cap), (end, cap)],
            6,
            4,
            orange.stroke_width(1),
        ))?
        .label(format!("2 × cores = {}: the CPU-bound cap", 2 * cores))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], orange));

    // The sampled count, as steps.
    let mut alive = Vec::with_capacity(trace.samples.len() * 2);
    for (i, &(t, n)) in trace.samples.iter().enumerate() {
        if t > end {
            break;
        }
        if i > 0 {
            alive.push((t, y(trace.samples[i - 1].1)));
        }
        alive.push((t, y(n)));
    }
    chart
        .draw_series(LineSeries::new(alive, blue.stroke_width(2)))?
        .label(format!(
            "worker threads alive (sampled every {} ms)",
            super::trace::PERIOD.as_millis()
        ))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], blue.stroke_width(2)));

    if !trace.decisions.is_empty() {
        // Before its first decision, the governor keeps the starting target: one worker per core.
        let steps = |start: Option<usize>, value: fn(&super::trace::Decision) -> usize| {
            let mut points: Vec<(f64, f64)> = start.map(|n| (0.0, y(n))).into_iter().collect();
            for d in &trace.decisions {
                if let Some(&(_, last)) = points.last() {
                    points.push((d.ms, last));
                }
                points.push((d.ms, y(value(d))));
            }
            if let Some(&(_, last)) = points.last() {
                points.push((trace.wall_ms.min(end), last));
            }
            points
        };
        chart
            .draw_series(LineSeries::new(
                steps(Some(cores), |d| d.target),
                red.stroke_width(2),
            ))?
            .label("the governor's target (its log; cores until its first decision)")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], red.stroke_width(2)));
        chart
            .draw_series(LineSeries::new(
                steps(None, |d| d.active),
                grey.stroke_width(1),
            ))?
            .label("active workers, at each decision (its log)")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey));
    }

    if let Some(at) = trace.switch_ms {
        chart.draw_series(LineSeries::new(
            [(at, ZERO), (at, top)],
            BLACK.stroke_width(1),
        ))?;
        // The label goes on the side of the line with more room.
        let left = at > end / 2.0;
        let style = TextStyle::from(("sans-serif", 13).into_font()).pos(Pos::new(
            if left { HPos::Right } else { HPos::Left },
            VPos::Top,
        ));
        chart.draw_series(std::iter::once(Text::new(
            format!(" {} at {at:.0} ms ", panel.switch),
            (at, top / 1.15),
            style,
        )))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::MiddleRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .draw()?;
    Ok(())
}
