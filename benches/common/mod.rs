//! What the benchmarks that write reports (`report`, `auto`) share: the machine and its meter,
//! the statistics, the CPU-bound task, the settings read from the environment, and the splicing
//! of a generated section into `BENCHMARKS.md`. Each bench includes it whole, so everything here
//! is used by both (a helper only one uses stays in that bench).

pub(crate) mod cpu_task;
pub(crate) mod machine;
pub(crate) mod markdown;
pub(crate) mod settings;
pub(crate) mod stats;
