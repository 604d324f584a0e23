//! What the benchmarks that write reports (`report`, `auto`) share: the machine and its meter,
//! the statistics, the CPU-bound task, the settings read from the environment, and the splicing
//! of a generated section into `BENCHMARKS.md`. Each bench includes it whole, so everything here
//! is used by both (a helper only one uses stays in that bench).

pub mod cpu_task;
pub mod machine;
pub mod markdown;
pub mod settings;
pub mod stats;
