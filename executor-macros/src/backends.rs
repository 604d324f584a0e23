//! The table of backends: everything the macro knows about each one, in one row.
//!
//! `valid` reads it to check the keyword and the options, `pipeline` to pick how `submit` calls
//! are rewritten, `expand` to open the pool, and `fallback` to keep the body of a block whose
//! input has errors. None of them matches on a backend by name, so adding a backend to `pool!`
//! is adding a row to [`BACKENDS`] (and the scope it opens to the runtime's `__private`).

/// Where a backend runs its calls, which decides how `submit` and `map` are rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// On threads of this process: a call is a closure, which may borrow from the caller (the
    /// hidden join guard makes that sound), and is passed through
    /// `::concurrent_futures::__private::bind<n>`.
    Local,
    /// In other processes: a call is a function pointer and its encoded arguments, built by
    /// `::concurrent_futures::__private::remote<n>`, and borrows nothing once submitted.
    Remote,
}

impl Placement {
    /// The prefix of the runtime's helpers that turn `f, a1, ..., an` into a call this placement
    /// can run: `bind<n>` or `remote<n>`.
    pub(crate) fn binder(self) -> &'static str {
        match self {
            Placement::Local => "bind",
            Placement::Remote => "remote",
        }
    }
}

/// How the block opens the pool: `::concurrent_futures::__private::<path>(options)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Opener {
    /// The constructor, as a path under `::concurrent_futures::__private` (`"ThreadScope::new"`).
    pub(crate) path: &'static str,
    /// `Some(argument)` when the constructor is an `unsafe fn`: the argument, written as the
    /// `SAFETY:` comment of the `unsafe` block, for why the expansion meets its contract. The
    /// expansion wraps only the macro's own tokens in that block, never the user's.
    pub(crate) safety: Option<&'static str>,
}

/// A cargo feature a backend is built behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Feature {
    /// Whether the macro crate was built with it: the runtime has the backend only then.
    pub(crate) enabled: bool,
    /// The compile error for naming the backend without it: which feature, and how to enable it.
    pub(crate) missing: &'static str,
}

/// An option a backend refuses with its own explanation rather than as unknown: one that a
/// neighbouring backend takes, so that a user may well try it here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// The option's name, as written in `pool!(Backend(<option> = ...) => ...)`.
    pub(crate) option: &'static str,
    /// What follows "the `<backend>` backend has no `<option>`" in the message: `": why; what to
    /// use instead"`, or `" yet: ..."` for an option the backend may gain.
    pub(crate) why: &'static str,
}

/// One backend: its keyword and everything that depends on which backend a block names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BackendSpec {
    /// The keyword in `pool!(<name> => { ... })`.
    pub(crate) name: &'static str,
    /// The options it takes, in the order the unknown-option error lists them.
    pub(crate) options: &'static [&'static str],
    /// Options of other backends it refuses, each with why.
    pub(crate) refusals: &'static [Refusal],
    /// Where calls run: whether tasks may borrow, and how `submit` and `map` are rewritten.
    pub(crate) placement: Placement,
    /// The runtime constructor the block opens the pool with.
    pub(crate) opener: Opener,
    /// `None` for a backend that is always built.
    pub(crate) feature: Option<Feature>,
}

impl BackendSpec {
    /// Whether this build of the macro (and of the runtime, whose features follow the macro's)
    /// has the backend.
    pub(crate) fn available(&self) -> bool {
        self.feature.is_none_or(|feature| feature.enabled)
    }

    /// The message for an option this backend does not take, or `None` if it takes it.
    pub(crate) fn refuse(&self, option: &str) -> Option<String> {
        if let Some(refusal) = self.refusals.iter().find(|r| r.option == option) {
            return Some(format!(
                "the {} backend has no `{option}`{}",
                self.name, refusal.why
            ));
        }
        if self.options.contains(&option) {
            return None;
        }
        let allowed: Vec<String> = self.options.iter().map(|o| format!("`{o}`")).collect();
        Some(format!(
            "unknown option `{option}` for the {} backend; expected one of: {}",
            self.name,
            allowed.join(", ")
        ))
    }
}

/// The row named `name`, whether or not this build has it.
pub(crate) fn lookup(name: &str) -> Option<&'static BackendSpec> {
    BACKENDS.iter().find(|spec| spec.name == name)
}

/// The keywords this build accepts, for the unknown-backend error: "`Thread`, `Auto`, ...".
pub(crate) fn available_names() -> String {
    let names: Vec<String> = BACKENDS
        .iter()
        .filter(|spec| spec.available())
        .map(|spec| format!("`{}`", spec.name))
        .collect();
    names.join(", ")
}

// Why options are refused, shared by the rows that refuse them for the same reason.
const THREADS_CANNOT_STOP: &str = ": a running thread cannot be stopped; use `Process`, whose \
     timed-out tasks are killed with their worker";
const THREADS_SHARE_MEMORY: &str = ": threads share one process's memory; use `Process`, which \
     caps each worker process";
const THREADS_CANNOT_RETRY: &str =
    ": a call on a thread neither loses its worker nor times out, and \
     its panic is its result; use `Process`, which retries a call whose worker died or timed out";
const FIXED_SIZE: &str = ": its pool has a fixed size, `max_workers`; `Auto` is the backend that \
     sizes its pool between the two";
const MPI_RANKS: &str = " yet: its workers are MPI ranks, which the pool neither starts nor stops \
     per task; use `Process` for it";

/// The SAFETY argument of the thread backends' `unsafe` constructors.
const THREAD_SCOPE_SAFETY: &str = "the pool and its join guard live in locals that user code \
     cannot name (mixed-site hygiene), so the guard cannot be leaked: it is dropped, joining \
     every task, before anything the tasks borrow goes out of scope";

/// Every backend `pool!` knows, in the order the unknown-backend error lists them.
pub(crate) const BACKENDS: &[BackendSpec] = &[
    BackendSpec {
        name: "Thread",
        options: &[
            "max_workers",
            "thread_name_prefix",
            "cancel_futures",
            "initializer",
            "initargs",
        ],
        refusals: &[
            Refusal {
                option: "timeout",
                why: THREADS_CANNOT_STOP,
            },
            Refusal {
                option: "memory_limit",
                why: THREADS_SHARE_MEMORY,
            },
            Refusal {
                option: "retries",
                why: THREADS_CANNOT_RETRY,
            },
            Refusal {
                option: "min_workers",
                why: FIXED_SIZE,
            },
        ],
        placement: Placement::Local,
        opener: Opener {
            path: "ThreadScope::new",
            safety: Some(THREAD_SCOPE_SAFETY),
        },
        feature: None,
    },
    // Threads, sized by measurement between `min_workers` and `max_workers`.
    BackendSpec {
        name: "Auto",
        options: &[
            "max_workers",
            "min_workers",
            "thread_name_prefix",
            "cancel_futures",
            "initializer",
            "initargs",
        ],
        refusals: &[
            Refusal {
                option: "timeout",
                why: THREADS_CANNOT_STOP,
            },
            Refusal {
                option: "memory_limit",
                why: THREADS_SHARE_MEMORY,
            },
            Refusal {
                option: "retries",
                why: THREADS_CANNOT_RETRY,
            },
        ],
        placement: Placement::Local,
        opener: Opener {
            path: "ThreadScope::new_auto",
            safety: Some(THREAD_SCOPE_SAFETY),
        },
        feature: None,
    },
    BackendSpec {
        name: "Process",
        options: &[
            "max_workers",
            "cancel_futures",
            "timeout",
            "max_tasks_per_child",
            "memory_limit",
            "retries",
            "initializer",
            "initargs",
        ],
        refusals: &[Refusal {
            option: "min_workers",
            why: FIXED_SIZE,
        }],
        placement: Placement::Remote,
        // Calls to worker processes borrow nothing once submitted: no invariant to uphold.
        opener: Opener {
            path: "ProcessScope::new",
            safety: None,
        },
        feature: None,
    },
    // Workers run the same executable and take calls as Process workers do.
    BackendSpec {
        name: "Mpi",
        options: &[
            "max_workers",
            "cancel_futures",
            "initializer",
            "initargs",
            "retries",
        ],
        refusals: &[
            Refusal {
                option: "min_workers",
                why: FIXED_SIZE,
            },
            Refusal {
                option: "timeout",
                why: MPI_RANKS,
            },
            Refusal {
                option: "max_tasks_per_child",
                why: MPI_RANKS,
            },
            Refusal {
                option: "memory_limit",
                why: MPI_RANKS,
            },
        ],
        placement: Placement::Remote,
        // As for Process: calls are encoded at `submit` and borrow nothing.
        opener: Opener {
            path: "MpiScope::new",
            safety: None,
        },
        // It builds on the system's MPI library, which a user must install and opt into.
        feature: Some(Feature {
            enabled: cfg!(feature = "mpi"),
            missing: "the `Mpi` backend needs the cargo feature `mpi` of the `concurrent-futures` \
                 package: `concurrent-futures = { ..., features = [\"mpi\"] }` (it builds on Open MPI and \
                 libclang: see the README, \"Running on a cluster\")",
        }),
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_identifiers() {
        for (i, spec) in BACKENDS.iter().enumerate() {
            assert!(
                syn::parse_str::<syn::Ident>(spec.name).is_ok(),
                "{}",
                spec.name
            );
            assert!(BACKENDS[..i].iter().all(|other| other.name != spec.name));
        }
    }

    #[test]
    fn a_refused_option_is_not_also_taken() {
        for spec in BACKENDS {
            for refusal in spec.refusals {
                assert!(!spec.options.contains(&refusal.option), "{}", spec.name);
            }
        }
    }

    #[test]
    fn openers_are_paths_and_unsafe_ones_argue_why() {
        for spec in BACKENDS {
            assert!(syn::parse_str::<syn::Path>(spec.opener.path).is_ok());
            if let Some(safety) = spec.opener.safety {
                assert!(!safety.is_empty(), "{}", spec.name);
            }
            // A borrowing (local) pool is only sound behind the join guard argument.
            assert_eq!(
                spec.placement == Placement::Local,
                spec.opener.safety.is_some(),
                "{}",
                spec.name
            );
        }
    }

    #[test]
    fn refusals_read_as_sentences() {
        let thread = lookup("Thread").unwrap();
        assert_eq!(
            thread.refuse("timeout").unwrap(),
            "the Thread backend has no `timeout`: a running thread cannot be stopped; use \
             `Process`, whose timed-out tasks are killed with their worker"
        );
        assert_eq!(thread.refuse("max_workers"), None);
        assert!(thread.refuse("workers").unwrap().starts_with(
            "unknown option `workers` for the Thread backend; expected one of: `max_workers`"
        ));
        assert!(lookup("Mpi")
            .unwrap()
            .refuse("timeout")
            .unwrap()
            .starts_with("the Mpi backend has no `timeout` yet: its workers are MPI ranks"));
    }
}
