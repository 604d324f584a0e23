//! The `pool!` macro's parser, outside a proc-macro context: the input, read as Rust source and
//! lexed by proc-macro2 (inputs that do not lex are skipped, as rustc would reject them before the
//! macro runs), goes through the macro's own pipeline: parse (`ast`), check (`valid`, against the
//! table in `backends`), rewrite the `submit`/`map` calls (`rewrite`) and generate the block
//! (`expand`), or the errors with what `fallback` keeps of the block; a name that is not a keyword
//! is handed to the macro of a named backend (`named`). Errors are expected; a panic
//! or a hang is a finding. The expansion, of an accepted input or of one with errors, must parse
//! as an expression again.

#![no_main]

use libfuzzer_sys::fuzz_target;
use proc_macro2::TokenStream;

// The macro crate's modules, as they are: its `lib.rs` is the only part that needs `proc_macro`;
// `pipeline::expand_pool` is what `pool!` runs.
#[allow(dead_code)]
#[path = "../../executor-macros/src/ast.rs"]
mod ast;
#[allow(dead_code)]
#[path = "../../executor-macros/src/backends.rs"]
mod backends;
#[allow(dead_code)]
#[path = "../../executor-macros/src/expand.rs"]
mod expand;
#[allow(dead_code)]
#[path = "../../executor-macros/src/facade.rs"]
mod facade;
#[allow(dead_code)]
#[path = "../../executor-macros/src/fallback.rs"]
mod fallback;
#[allow(dead_code)]
#[path = "../../executor-macros/src/named.rs"]
mod named;
#[path = "../../executor-macros/src/pipeline.rs"]
mod pipeline;
#[allow(dead_code)]
#[path = "../../executor-macros/src/rewrite.rs"]
mod rewrite;
#[allow(dead_code)]
#[path = "../../executor-macros/src/valid.rs"]
mod valid;

/// The stack each input is checked on. Deep nesting exhausts any fixed stack: syn's parser and
/// visitors recurse once per level, and so does rustc, which overflows its own 8 MiB stack at
/// about twice the depth that the macro (built without optimisation, as proc macros are) can take;
/// see fuzz/README.md. 256 MiB is more than any input up to libFuzzer's default `-max_len` of
/// 4096 bytes needs, so the fuzzer looks past that known limit for other failures.
const STACK: usize = 256 << 20;

/// The most `submit`/`map` calls an input may hold. Rewriting nested calls costs time quadratic in
/// their depth (each level re-parses the levels it contains; see fuzz/README.md): 200 nested
/// Process `submit`s take seconds. Past this many, the fuzzer would only rediscover that.
const MAX_CALLS: usize = 32;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.matches("submit").count() + text.matches("map").count() > MAX_CALLS {
        return;
    }
    let text = text.to_owned();
    let checked = std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(move || check(&text))
        .expect("a thread to check the input on");
    if let Err(panic) = checked.join() {
        std::panic::resume_unwind(panic);
    }
});

fn check(text: &str) {
    let Ok(tokens) = text.parse::<TokenStream>() else {
        return;
    };
    let expansion = pipeline::expand_pool(tokens);
    if let Err(error) = syn::parse2::<syn::Expr>(expansion.clone()) {
        panic!("the expansion does not parse: {error}\n{expansion}");
    }
}
