//! Turning `submit(f, a1, ..., an)` into a call with no arguments.
//!
//! Rust has no variadic generics, but the macro knows how many arguments each `submit` has, so it
//! calls `bind<n>`. Passing `f` through a function whose bound is `FnOnce(A1, ..., An) -> R` lets
//! rustc infer the parameter types of a closure literal from the arguments
//! (`submit(|s| s.len(), text)` needs no annotation). The arguments are evaluated by the caller,
//! at `submit` time, in order; the returned closure owns them.

macro_rules! binders {
    ($($name:ident($($arg:ident: $ty:ident),*);)*) => {$(
        #[doc(hidden)]
        #[inline]
        #[allow(clippy::too_many_arguments)] // one per argument of the user's function
        pub fn $name<Func, Ret, $($ty),*>(f: Func, $($arg: $ty),*) -> impl FnOnce() -> Ret
        where
            Func: FnOnce($($ty),*) -> Ret,
        {
            move || f($($arg),*)
        }
    )*};
}

binders! {
    bind0();
    bind1(a1: A1);
    bind2(a1: A1, a2: A2);
    bind3(a1: A1, a2: A2, a3: A3);
    bind4(a1: A1, a2: A2, a3: A3, a4: A4);
    bind5(a1: A1, a2: A2, a3: A3, a4: A4, a5: A5);
    bind6(a1: A1, a2: A2, a3: A3, a4: A4, a5: A5, a6: A6);
    bind7(a1: A1, a2: A2, a3: A3, a4: A4, a5: A5, a6: A6, a7: A7);
    bind8(a1: A1, a2: A2, a3: A3, a4: A4, a5: A5, a6: A6, a7: A7, a8: A8);
    bind9(a1: A1, a2: A2, a3: A3, a4: A4, a5: A5, a6: A6, a7: A7, a8: A8, a9: A9);
    bind10(a1: A1, a2: A2, a3: A3, a4: A4, a5: A5, a6: A6, a7: A7, a8: A8, a9: A9, a10: A10);
    bind11(a1: A1, a2: A2, a3: A3, a4: A4, a5: A5, a6: A6, a7: A7, a8: A8, a9: A9, a10: A10, a11: A11);
    bind12(a1: A1, a2: A2, a3: A3, a4: A4, a5: A5, a6: A6, a7: A7, a8: A8, a9: A9, a10: A10, a11: A11, a12: A12);
}
