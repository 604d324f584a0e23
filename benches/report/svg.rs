//! `benchmarks-scaling.svg`: the scaling table as a plot, with the ideal and the target.

use std::path::Path;

use crate::common::stats::{summarise, Summary};
use crate::scaling::Scaling;
use crate::SCALING_WORKERS;

pub(crate) fn write_scaling_svg(
    scaling: &Scaling,
    path: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;

    let cores = scaling.cores as f64;
    let top = scaling
        .series
        .iter()
        .flat_map(|(_, cols)| cols.iter().flatten().flatten())
        .fold(cores, |a, &b| a.max(b))
        * 1.6;
    let root = SVGBackend::new(path, (760, 460)).into_drawing_area();
    root.fill(&WHITE)?;
    let x = |workers: usize| (workers as f64).log2();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Speedup of {} CPU-bound tasks (~{:.0} ms each) over a plain loop, {} cores",
                scaling.tasks,
                scaling.task_ms(),
                scaling.cores
            ),
            ("sans-serif", 17),
        )
        .margin(14)
        .x_label_area_size(42)
        .y_label_area_size(52)
        .build_cartesian_2d(-0.25f64..4.25f64, 0f64..top)?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .x_labels(5)
        .x_label_formatter(&|v| format!("{}", 2f64.powf(*v).round()))
        .x_desc("workers")
        .y_desc("speedup (median; bars: min–max over runs)")
        .draw()?;

    let ideal: Vec<(f64, f64)> = SCALING_WORKERS
        .iter()
        .map(|&w| (x(w), (w as f64).min(cores)))
        .collect();
    chart
        .draw_series(LineSeries::new(
            ideal.clone(),
            BLACK.mix(0.5).stroke_width(1),
        ))?
        .label(format!("ideal: workers, up to {} cores", scaling.cores))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.5)));
    chart
        .draw_series(LineSeries::new(
            ideal.iter().map(|&(x, y)| (x, 0.9 * y)),
            BLACK.mix(0.25).stroke_width(1),
        ))?
        .label("target: 0.9 × ideal")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.25)));

    let colours = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
    ];
    for (k, (label, cols)) in scaling.series.iter().enumerate() {
        let colour = colours[k % colours.len()];
        let offset = (k as f64 - 1.0) * 0.04;
        let points: Vec<(f64, Summary)> = SCALING_WORKERS
            .iter()
            .zip(cols)
            .filter_map(|(&w, runs)| Some((x(w) + offset, summarise(runs.iter().copied())?)))
            .collect();
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|&(x, s)| (x, s.median)),
                colour.stroke_width(2),
            ))?
            .label(label.trim_matches('`'))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
        chart.draw_series(points.iter().map(|&(x, s)| {
            ErrorBar::new_vertical(x, s.min, s.median, s.max, colour.stroke_width(1), 6)
        }))?;
        chart.draw_series(
            points
                .iter()
                .map(|&(x, s)| Circle::new((x, s.median), 3, colour.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .draw()?;
    root.present()?;
    Ok(())
}
