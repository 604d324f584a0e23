//! How the report keeps a figure (a [`Row`] of wall times, one per run, in a [`Table`]) and shows
//! it: costs per unit, ratios taken within each run, about three significant digits.

use crate::common::stats::Summary;

/// One peer on one workload: what it is, the wall time of the whole workload in each run (`None`
/// where it could not run), and how many units of work that time covers (tasks, bytes, ...).
pub(crate) struct Row {
    pub label: String,
    pub seconds: Vec<Option<f64>>,
    pub units: f64,
}

/// How a table shows a row's cost per unit.
#[derive(Clone, Copy)]
pub(crate) enum Unit {
    /// Seconds per item, shown scaled (1e6: µs) with a name.
    PerItem(f64, &'static str),
    /// Bytes per second, shown in GB/s.
    Rate,
    /// Seconds for the whole workload, shown in ms.
    Millis,
}

impl Unit {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Unit::PerItem(_, name) => name,
            Unit::Rate => "GB/s",
            Unit::Millis => "ms",
        }
    }

    /// What a cost (seconds per unit) shows as.
    pub(crate) fn show(self, cost: f64) -> f64 {
        match self {
            Unit::PerItem(scale, _) => cost * scale,
            Unit::Rate => 1.0 / cost / 1e9,
            Unit::Millis => cost * 1e3,
        }
    }
}

pub(crate) struct Table {
    pub title: String,
    pub about: String,
    pub unit: Unit,
    pub rows: Vec<Row>,
    /// The rows the others are divided by (labels), one ratio column each.
    pub refs: Vec<&'static str>,
    /// Cores used by other processes while it ran (see [`crate::common::machine::Meter`]).
    pub others: f64,
}

impl Table {
    pub(crate) fn row(&self, label: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.label == label)
    }
}

impl Row {
    pub(crate) fn new(label: &str, runs: usize, units: f64) -> Self {
        Row {
            label: label.to_string(),
            seconds: vec![None; runs],
            units,
        }
    }

    /// Seconds per unit, in each run.
    pub(crate) fn costs(&self) -> Vec<Option<f64>> {
        self.seconds
            .iter()
            .map(|s| s.map(|s| s / self.units))
            .collect()
    }
}

/// Per run, `a / b` where both ran.
pub(crate) fn ratios(a: &[Option<f64>], b: &[Option<f64>]) -> Vec<Option<f64>> {
    a.iter().zip(b).map(|(a, b)| Some((*a)? / (*b)?)).collect()
}

/// A number with about three significant digits.
pub(crate) fn sig(x: f64) -> String {
    let a = x.abs();
    if a >= 1000.0 {
        let whole = format!("{x:.0}");
        // Thousands separators, as the rest of BENCHMARKS.md writes them.
        let (sign, digits) = whole.split_at(usize::from(whole.starts_with('-')));
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        format!("{sign}{out}")
    } else if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else if a >= 0.01 || a == 0.0 {
        format!("{x:.3}")
    } else {
        // Two significant digits: 0.0075, 0.00078.
        let decimals = (-a.log10()).ceil() as usize + 1;
        format!("{x:.decimals$}")
    }
}

/// `median (min–max)`, in the order the unit shows them (a rate's best is its largest).
pub(crate) fn show_summary(s: Summary, unit: Unit) -> String {
    let (a, b, c) = (unit.show(s.median), unit.show(s.min), unit.show(s.max));
    let (lo, hi) = if b <= c { (b, c) } else { (c, b) };
    format!("{} ({}–{})", sig(a), sig(lo), sig(hi))
}

pub(crate) fn show_ratio(s: Summary) -> String {
    format!("{}× ({}–{})", sig(s.median), sig(s.min), sig(s.max))
}
