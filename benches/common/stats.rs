//! The statistics both reports print: the median of a setting's runs, with the fastest and
//! slowest.

/// The median, min and max of some figures.
#[derive(Clone, Copy)]
pub(crate) struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

/// The summary of the figures that are there: `report` passes `Option<f64>`s (`None`: that run
/// could not run the peer), `auto` plain `f64`s. `None` when there are none.
pub(crate) fn summarise<V: Into<Option<f64>>>(
    values: impl IntoIterator<Item = V>,
) -> Option<Summary> {
    let mut v: Vec<f64> = values.into_iter().filter_map(Into::into).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Summary {
        median,
        min: v[0],
        max: v[n - 1],
    })
}
