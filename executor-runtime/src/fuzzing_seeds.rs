//! The hand-made inputs of the `frames` fuzz target (`fuzz/seeds/frames`), built here from this
//! version of the protocol. The test fails when a change to the messages leaves the files behind
//! (they were still protocol version 1 at version 2); `WRITE_FUZZ_SEEDS=1` rewrites them. The
//! dictionary `fuzz/frames.dict` is checked for this version's frame headers.

use std::path::Path;

use super::tests::{call_frame, frame, hello_frame, outcome_frame};
use super::*;
use crate::remote::call::CallOutput;
use crate::remote::wire::Parts;

/// A call whose arguments are `encoded` and then a raw tail of `tail`, said to be `text` or not
/// (short tails, which `Parts` would keep inline, so that the seed stays small).
fn call_with_tail(id: u64, encoded: &[u8], tail: &[u8], text: bool) -> Vec<u8> {
    let head = CallHead {
        id,
        trampoline: 0,
        function: 0,
        tail_len: tail.len() as u64,
        text,
    };
    let mut bytes = Vec::new();
    let len = encoded.len() + 8 + tail.len();
    assert!(head.write(len, &mut bytes));
    bytes.extend_from_slice(encoded);
    bytes.extend_from_slice(&(tail.len() as u64).to_le_bytes());
    bytes.extend_from_slice(tail);
    bytes
}

/// An outcome whose result is a raw tail of `tail`, said to be text.
fn outcome_with_text_tail(id: u64, tail: &str) -> Vec<u8> {
    let mut output = CallOutput {
        bytes: (tail.len() as u64).to_le_bytes().to_vec(),
        tail: Some(Tail::Text(tail.to_string())),
    };
    let mut bytes = Vec::new();
    let head = OutcomeHead {
        id,
        status: CallStatus::Returned,
        elapsed_ns: 1234,
        tail_len: 0,
        text: false,
    };
    head.write(&mut bytes, &mut output);
    bytes.extend_from_slice(&output.bytes);
    bytes.extend_from_slice(tail.as_bytes());
    bytes
}

fn encoded(value: &(impl Serialize + 'static)) -> Vec<u8> {
    let mut bytes = Vec::new();
    wire::encode_value(value, &mut bytes).unwrap();
    bytes
}

/// A seed: its file name, its bytes, the reader it is written for, and how that reader ends.
struct Seed {
    name: &'static str,
    bytes: Vec<u8>,
    reader: fn(&[u8]) -> Summary,
    end: Option<&'static str>,
}

fn seeds() -> Vec<Seed> {
    let mut parent = frame(Kind::Ready, &4242u32.to_le_bytes());
    parent.extend(outcome_frame(
        0,
        CallStatus::Returned as u8,
        &encoded(&"done".to_string()),
    ));
    parent.extend(outcome_frame(1, CallStatus::Panicked as u8, b"boom"));
    parent.extend(outcome_frame(
        2,
        CallStatus::Transport as u8,
        b"could not decode",
    ));
    let nested: Option<(i32, String)> = Some((-3, "bad".to_string()));
    parent.extend(outcome_frame(
        3,
        CallStatus::Returned as u8,
        &encoded(&nested),
    ));
    parent.extend(outcome_with_text_tail(4, "xyzé"));

    let mut worker = hello_frame();
    let mut small = Parts::default();
    small.push_value(5u64).unwrap();
    small.push_value("five".to_string()).unwrap();
    worker.extend(call_frame(0, &small));
    let bytes: Vec<u8> = (0..20).collect();
    worker.extend(call_with_tail(
        1,
        &encoded(&"head".to_string()),
        &bytes,
        false,
    ));
    worker.extend(call_with_tail(
        2,
        &encoded(&"text".to_string()),
        "abc€".as_bytes(),
        true,
    ));
    let mut three = Parts::default();
    three.push_value((1u8, 2u8, 3u8)).unwrap();
    worker.extend(call_frame(3, &three));

    let mut initializer = vec![0u8; 48];
    initializer.push(1);
    initializer.extend_from_slice(&16i64.to_le_bytes());
    initializer.extend_from_slice(&32i64.to_le_bytes());
    initializer.extend(encoded(&"five".to_string()));
    let mut worker_initializer = frame(Kind::Hello, &initializer);
    worker_initializer.extend(call_frame(0, &Parts::default()));

    let seed = |name, bytes, reader, end| Seed {
        name,
        bytes,
        reader,
        end,
    };
    vec![
        seed("parent", parent, parent_stream, None),
        seed("worker", worker, worker_stream, None),
        seed(
            "worker_initializer",
            worker_initializer,
            worker_stream,
            None,
        ),
        seed(
            "refused",
            frame(Kind::Refused, b"the executable changed"),
            parent_stream,
            Some("refused: the executable changed"),
        ),
    ]
}

#[test]
fn the_fuzz_seeds_are_frames_of_this_protocol() {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/frames");
    let rewrite = std::env::var_os("WRITE_FUZZ_SEEDS").is_some();
    for Seed {
        name,
        bytes,
        reader,
        end,
    } in seeds()
    {
        let summary = reader(&bytes);
        assert_eq!(summary.end.as_deref(), end, "{name}: {summary:?}");
        assert_eq!(summary.rejected, 0, "{name}: {summary:?}");
        let path = directory.join(name);
        if rewrite {
            std::fs::write(&path, &bytes).unwrap();
        }
        let file = std::fs::read(&path).unwrap_or_default();
        assert!(
            file == bytes,
            "fuzz/seeds/frames/{name} is not this protocol's: rewrite it with WRITE_FUZZ_SEEDS=1"
        );
    }
    // The dictionary's frame headers, written by hand.
    let dictionary = std::fs::read_to_string(directory.join("../../frames.dict")).unwrap();
    let header = format!("hello=\"\\xEC\\x{:02X}\\x01\\x00\"", wire::VERSION);
    assert!(
        dictionary.contains(&header),
        "fuzz/frames.dict lacks {header}"
    );
}
