//! Every compile error `pool!` gives, pinned with its message and the token it points at.

#[test]
fn compile_errors_point_at_the_offending_token() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}

/// Without the `mpi` feature, `Mpi` is a compile error that names the feature to enable.
#[test]
#[cfg(not(feature = "mpi"))]
fn mpi_without_the_feature_is_a_compile_error_naming_it() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui_without_mpi/*.rs");
}

/// With the `mpi` feature, `Mpi` refuses the options that only Process has.
#[test]
#[cfg(feature = "mpi")]
fn mpi_refuses_process_only_options() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui_mpi/*.rs");
}
