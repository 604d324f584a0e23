//! Which serde format the Process backend uses: a round trip (encode, then decode) of typical
//! arguments through bincode 2, postcard and bitcode's serde mode. Run: `cargo bench --bench wire_formats`.
//! The figures and the choice (postcard) are in BENCHMARKS.md.

use divan::black_box;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

fn main() {
    divan::main();
}

#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
struct Record {
    name: String,
    tags: Vec<String>,
    score: f64,
    id: u64,
}

fn pair() -> (u64, u64) {
    (3, 4)
}

fn text() -> String {
    "x".repeat(100)
}

fn record() -> Record {
    Record {
        name: "hello world".into(),
        tags: vec!["a".into(), "bb".into(), "ccc".into()],
        score: 1.5,
        id: 42,
    }
}

fn bytes() -> Vec<u8> {
    vec![7u8; 1 << 20]
}

fn bincode2<T: Serialize + DeserializeOwned>(value: &T) -> T {
    let config = bincode::config::standard();
    let encoded = bincode::serde::encode_to_vec(value, config).unwrap();
    bincode::serde::decode_from_slice(&encoded, config)
        .unwrap()
        .0
}

fn postcard<T: Serialize + DeserializeOwned>(value: &T) -> T {
    postcard::from_bytes(&postcard::to_allocvec(value).unwrap()).unwrap()
}

fn bitcode<T: Serialize + DeserializeOwned>(value: &T) -> T {
    bitcode::deserialize(&bitcode::serialize(value).unwrap()).unwrap()
}

macro_rules! round_trips {
    ($($module:ident: $make:ident;)*) => {$(
        mod $module {
            use super::*;

            #[divan::bench]
            fn bincode_2(bencher: divan::Bencher) {
                let value = $make();
                bencher.bench(|| bincode2(black_box(&value)));
            }

            #[divan::bench]
            fn postcard_1(bencher: divan::Bencher) {
                let value = $make();
                bencher.bench(|| postcard(black_box(&value)));
            }

            #[divan::bench]
            fn bitcode_serde(bencher: divan::Bencher) {
                let value = $make();
                bencher.bench(|| bitcode(black_box(&value)));
            }
        }
    )*};
}

round_trips! {
    pair_of_u64: pair;
    string_100_bytes: text;
    small_struct: record;
    vec_u8_1_mib: bytes;
}
