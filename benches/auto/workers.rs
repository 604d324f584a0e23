//! The report's sections on `Auto`'s workers: the workers table, the starvation block, the blocks
//! that hung, and the plot.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use super::{ms, Report};
use crate::plot::{write_workers_svg, Panel};
use crate::trace::{Trace, PERIOD};
use crate::{Setting, Workload, CPU_TASKS, HUNG, IO_TASKS};
use crate::{STARVATION_FIXED, STARVATION_SAFETY};

impl Report<'_> {
    /// The `Auto` trace of `workload` with the median wall time.
    fn median_trace(&self, workload: Workload) -> Option<&Trace> {
        let mut traces: Vec<&Trace> = self.results.traces.get(&workload)?.iter().collect();
        traces.sort_by(|a, b| a.wall_ms.total_cmp(&b.wall_ms));
        traces.get(traces.len() / 2).copied()
    }

    fn traces(&self) -> impl Iterator<Item = &Trace> {
        self.results
            .traces
            .values()
            .flatten()
            .chain(&self.results.tiny_trace)
            .chain(self.results.starvation.as_ref().map(|s| &s.auto_trace))
            .chain(self.results.hung.iter().filter_map(|h| h.2.as_ref()))
    }

    /// The most workers alive in any `Auto` block of `workload`.
    pub(super) fn max_alive(&self, workload: Workload) -> Option<usize> {
        self.results
            .traces
            .get(&workload)?
            .iter()
            .map(Trace::max_alive)
            .max()
    }

    pub(super) fn workers_section(&self, md: &mut String) {
        let _ = writeln!(md, "### Workers alive under `Auto`\n");
        let _ = writeln!(
            md,
            "Sampled every {} ms (threads named `auto-*`), the most in any `Auto` block of the \
             workload; for the mixed workloads also before and after the switch of batches. The \
             governor's figures come from its log records.\n",
            PERIOD.as_millis()
        );
        let _ = writeln!(
            md,
            "| workload | most alive | first batch / second batch | governor's highest target | decisions logged |\n\
             |---|---:|---:|---:|---:|"
        );
        let tiny = self.results.tiny_trace.iter().collect::<Vec<_>>();
        let rows: Vec<(&str, Vec<&Trace>)> = vec![
            ("I/O-bound", self.traces_of(Workload::Io)),
            ("CPU-bound", self.traces_of(Workload::Cpu)),
            ("mixed, I/O → CPU", self.traces_of(Workload::IoCpu)),
            ("mixed, CPU → I/O", self.traces_of(Workload::CpuIo)),
            ("tiny tasks (one untimed block)", tiny),
        ];
        for (name, traces) in rows {
            if traces.is_empty() {
                continue;
            }
            let most = traces.iter().map(|t| t.max_alive()).max().unwrap_or(0);
            let phases = if traces[0].switch_ms.is_some() {
                let first = traces
                    .iter()
                    .map(|t| t.max_alive_between(0.0, t.switch_ms.unwrap_or(0.0)))
                    .max()
                    .unwrap_or(0);
                let second = traces
                    .iter()
                    .map(|t| t.max_alive_between(t.switch_ms.unwrap_or(0.0), f64::INFINITY))
                    .max()
                    .unwrap_or(0);
                format!("{first} / {second}")
            } else {
                "–".to_string()
            };
            let target = traces
                .iter()
                .filter_map(|t| t.max_target())
                .max()
                .map_or_else(|| "–".to_string(), |n| n.to_string());
            let decisions: usize = traces.iter().map(|t| t.decisions.len()).sum();
            let _ = writeln!(
                md,
                "| {name} | {most} | {phases} | {target} | {decisions} |"
            );
        }
        md.push('\n');

        let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
        for d in self.traces().flat_map(|t| &t.decisions) {
            *reasons.entry(d.reason.as_str()).or_default() += 1;
        }
        if reasons.is_empty() {
            let _ = writeln!(
                md,
                "The runtime logged no `concurrent_futures::auto` decision lines (`pool N: target T workers, \
                 A active of S started (reason)`), so the plot shows only the sampled count."
            );
            let unparsed: Vec<&String> = self.traces().flat_map(|t| &t.unparsed).take(3).collect();
            if !unparsed.is_empty() {
                let _ = writeln!(md, " Records seen that did not read as decisions:");
                for line in unparsed {
                    let _ = writeln!(md, "  - `{line}`");
                }
            }
        } else {
            let list: Vec<String> = reasons
                .iter()
                .map(|(r, n)| format!("`{r}` ({n})"))
                .collect();
            let _ = writeln!(
                md,
                "The governor's reasons over every traced block: {}.",
                list.join(", ")
            );
        }
        let file = self
            .settings
            .svg
            .file_name()
            .map_or_else(String::new, |f| f.to_string_lossy().into_owned());
        let _ = writeln!(
            md,
            "\n![Auto's workers over time in the two mixed workloads]({file})\n\n\
             The worker count over time in the mixed workloads (the `Auto` block with the median \
             wall time of each order); the vertical line is where the first batch's results \
             were all in and the second batch began.\n"
        );
    }

    fn traces_of(&self, workload: Workload) -> Vec<&Trace> {
        self.results
            .traces
            .get(&workload)
            .map(|t| t.iter().collect())
            .unwrap_or_default()
    }

    pub(super) fn starvation_section(&self, md: &mut String) {
        let Some(s) = &self.results.starvation else {
            return;
        };
        let cores = s.cores;
        let _ = writeln!(md, "### Starvation\n");
        let _ = writeln!(
            md,
            "{cores} tasks (one per core) each wait on a `Condvar` for a flag that a task \
             submitted after them sets; the block collects the waiters, then the setter.\n"
        );
        let _ = match s.auto {
            Some((seconds, opened)) => writeln!(
                md,
                "- `Auto`: the block completed in {} ms; {opened} of {cores} waiters saw the \
                 flag (each would have given up after {} s); at most {} workers alive.",
                ms(seconds),
                STARVATION_SAFETY.as_secs(),
                s.auto_trace.max_alive(),
            ),
            None => writeln!(md, "- `Auto`: the block hung (see below)."),
        };
        let decisions: Vec<String> = s
            .auto_trace
            .decisions
            .iter()
            .map(|d| {
                format!(
                    "at {:.0} ms, target {} ({} active of {} started; {})",
                    d.ms, d.target, d.active, d.started, d.reason
                )
            })
            .collect();
        if !decisions.is_empty() {
            let _ = writeln!(
                md,
                "  The governor's decisions in that block: {}.",
                decisions.join("; ")
            );
        }
        let _ = match s.fixed {
            Some((seconds, opened)) => writeln!(
                md,
                "- `Thread(max_workers = {cores})`, every worker taken by a waiter: with waits \
                 of {} s it completed in {} ms, and {opened} of {cores} waiters saw the flag: \
                 it finishes only because the waits time out. Without a timeout it would \
                 deadlock, so that case is not run.",
                STARVATION_FIXED.as_secs(),
                ms(seconds),
            ),
            None => writeln!(md, "- `Thread(max_workers = {cores})`: the block hung."),
        };
        md.push('\n');
    }

    /// Blocks of `workload` under `setting` taken for hung.
    pub(super) fn hung(&self, workload: Workload, setting: Setting) -> usize {
        self.results
            .hung
            .iter()
            .filter(|h| h.0 == workload && h.1 == setting)
            .count()
    }

    pub(super) fn hung_section(&self, md: &mut String) {
        if self.results.hung.is_empty() {
            return;
        }
        let _ = writeln!(md, "### Blocks that hung\n");
        let _ = writeln!(
            md,
            "A block still running after {} s was taken for hung and left behind (its thread \
             and its pool's workers stay blocked until the bench exits); its time counts in no \
             table.\n",
            HUNG.as_secs()
        );
        for (workload, setting, trace) in &self.results.hung {
            let _ = write!(md, "- {workload:?} under {}", self.label(*setting));
            match trace {
                Some(t) => {
                    let last: Vec<String> = t
                        .decisions
                        .iter()
                        .rev()
                        .take(3)
                        .rev()
                        .map(|d| {
                            format!(
                                "{:.0} ms: target {}, {} active of {} started ({})",
                                d.ms, d.target, d.active, d.started, d.reason
                            )
                        })
                        .collect();
                    let _ = writeln!(
                        md,
                        ": {} workers alive at the end; the governor's last decisions: {}.",
                        t.samples.last().map_or(0, |s| s.1),
                        if last.is_empty() {
                            "none".to_string()
                        } else {
                            last.join("; ")
                        }
                    );
                }
                None => md.push_str(".\n"),
            }
        }
        md.push('\n');
    }

    pub(crate) fn write_svg(&self, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
        let mut panels = Vec::new();
        for (workload, order, switch) in [
            (Workload::IoCpu, "I/O batch, then CPU batch", "I/O → CPU"),
            (Workload::CpuIo, "CPU batch, then I/O batch", "CPU → I/O"),
        ] {
            // A block that hung in every run still shows how it got there.
            let hung = self
                .results
                .hung
                .iter()
                .find(|h| h.0 == workload && h.1 == Setting::Auto)
                .and_then(|h| h.2.as_ref());
            let (trace, how, until_ms) = match (self.median_trace(workload), hung) {
                (Some(trace), _) => (trace, format!("{:.0} ms", trace.wall_ms), None),
                (None, Some(trace)) => {
                    // Nothing changes after the last decision: show up to a little past it.
                    let last = trace.decisions.last().map_or(0.0, |d| d.ms);
                    let until = (last * 1.5).max(last + 200.0);
                    let how = format!(
                        "hung: left after {} s, shown to {until:.0} ms",
                        HUNG.as_secs()
                    );
                    (trace, how, Some(until))
                }
                (None, None) => continue,
            };
            {
                panels.push(Panel {
                    title: format!(
                        "Auto's workers, {order} ({IO_TASKS} fetches, {CPU_TASKS} × 20 ms; \
                         {how}, {} cores)",
                        self.cores
                    ),
                    trace,
                    switch,
                    until_ms,
                });
            }
        }
        if panels.is_empty() {
            return Err("no Auto trace of a mixed workload".into());
        }
        write_workers_svg(&panels, self.cores, path)
    }
}
