//! Arguments and results that cannot cross to or from a worker process: the call fails with a
//! `TaskError::Transport` that says why, in the user's terms where the user gave some, and every
//! other call of the block completes.

use concurrent_futures::{pool, TaskError};
use serde::ser::Error as _;
use serde::{Deserialize, Serialize, Serializer};

mod common;
use common::within;

/// A value whose `Serialize` refuses it, with a message of its own.
#[derive(Debug, Deserialize)]
struct Refuses;

impl Serialize for Refuses {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(S::Error::custom("my message"))
    }
}

fn len(bytes: Vec<u8>) -> usize {
    bytes.len()
}

fn take(_: Refuses) -> u8 {
    1
}

/// The refusing value deep in a result: in a vector, in a tuple.
fn give() -> Vec<(u8, Refuses)> {
    vec![(1, Refuses)]
}

fn expect_transport<R: std::fmt::Debug>(outcome: Result<R, TaskError>) -> String {
    match outcome {
        Err(TaskError::Transport(why)) => why,
        other => panic!("expected a transport error, got {other:?}"),
    }
}

/// An argument over the 4 GiB frame limit fails at `submit`, saying so, and is never sent. The
/// vector is `calloc`'d, and a `Vec<u8>` argument moves into the message without a copy, so its
/// 4 GiB are never touched.
#[test]
fn an_argument_over_the_4_gib_message_limit_fails_at_submit_and_the_rest_completes() {
    let huge = vec![0u8; (4 << 30) + 1];
    let (outcome, after) = within("the block", move || {
        pool!(Process(max_workers = 1) => {
            let outcome = submit(len, huge).result();
            (outcome, submit(len, vec![7u8; 3]).result())
        })
    });
    let why = expect_transport(outcome);
    // 8 bytes of length, then the bytes.
    let size = (4usize << 30) + 1 + 8;
    assert_eq!(
        why,
        format!("the arguments are larger than the 4 GiB message limit: {size} bytes")
    );
    assert_eq!(after, Ok(3));
}

/// A custom `Serialize` error's own message reaches the caller, for an argument (encoded in the
/// parent, at `submit`) and for a result (encoded in the worker); postcard alone gives "Serde
/// Serialization Error".
#[test]
fn a_custom_serialize_error_keeps_its_message_for_arguments_and_results() {
    let (argument, result, after) = within("the block", || {
        pool!(Process(max_workers = 1) => {
            let argument = submit(take, Refuses).result();
            let result = submit(give).result();
            (argument, result, submit(len, vec![7u8; 3]).result())
        })
    });
    assert_eq!(
        expect_transport(argument),
        "could not encode the arguments: my message"
    );
    assert_eq!(
        expect_transport(result),
        "could not encode the result: my message"
    );
    assert_eq!(after, Ok(3));
}

/// The same on `map`, whose items travel in chunks and whose results come back in one message.
#[test]
fn a_custom_serialize_error_keeps_its_message_in_map() {
    fn refuse(_: u8) -> Refuses {
        Refuses
    }
    let results: Vec<Result<Refuses, TaskError>> = within(
        "the block",
        || pool!(Process(max_workers = 1) => { map(refuse, [1u8, 2], 2).collect() }),
    );
    assert_eq!(results.len(), 2);
    for outcome in results {
        assert_eq!(
            expect_transport(outcome),
            "could not encode the result: my message"
        );
    }
}
