//! Turning `submit(f, a1, ..., an)` into a call another process can make.
//!
//! A worker process runs the same binary as its parent, so a function's address differs between the
//! two only by the load offset of the executable (ASLR moves the whole image at once). The parent
//! therefore sends two addresses, each as an offset from the executable's program headers:
//!
//! - the user's function, as a plain `fn(A1, ..., An) -> R` pointer. Coercing `f` to a function
//!   pointer is also the check that it can cross the boundary: function items, paths and closures
//!   that capture nothing coerce; a capturing closure is a compile error at the `submit` call
//!   ("closures can only be coerced to `fn` types if they do not capture any variables");
//! - a *trampoline*, [`trampoline::<(A1, ..., An), R>`](trampoline), the instance of a generic
//!   function for exactly these types, which decodes the argument tuple, calls the function through
//!   the pointer, catches a panic and encodes the result.
//!
//! The handshake checks that the worker's executable is the parent's (see `worker_process`), which
//! is what makes the addresses meaningful. Arguments and results must be owned
//! (`Serialize + DeserializeOwned`): a worker decodes them from a buffer that does not outlive the call.

use std::panic::{self, AssertUnwindSafe};
use std::sync::OnceLock;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{drop_payload, panic_message};
use crate::wire;

/// A call ready to be sent: the function and trampoline addresses, and the encoded arguments.
#[doc(hidden)]
pub struct RemoteCall<R> {
    pub(crate) function: isize,
    pub(crate) trampoline: isize,
    /// The encoded argument tuple, or why the call cannot be sent.
    pub(crate) arguments: Result<wire::Parts, String>,
    _result: std::marker::PhantomData<fn() -> R>,
}

/// How a call ended in the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallStatus {
    /// The output holds the encoded result.
    Returned = 0,
    /// The output holds the panic message.
    Panicked = 1,
    /// The output says why the arguments could not be decoded or the result encoded.
    Transport = 2,
}

impl CallStatus {
    pub(crate) fn from_byte(byte: u8) -> Option<CallStatus> {
        match byte {
            0 => Some(CallStatus::Returned),
            1 => Some(CallStatus::Panicked),
            2 => Some(CallStatus::Transport),
            _ => None,
        }
    }
}

/// The type of every trampoline once its type parameters are erased: the function's address, the
/// encoded arguments and their raw tail (see `wire::Parts`), and the buffer for the encoded result
/// (or message).
pub(crate) type ErasedTrampoline =
    unsafe fn(usize, &[u8], Option<Vec<u8>>, &mut Vec<u8>) -> CallStatus;

/// An argument tuple that can call a function pointer of the matching arity.
#[doc(hidden)]
pub(crate) trait Arguments<R>: Sized {
    /// `fn(A1, ..., An) -> R`.
    type Function: Copy;

    /// Rebuilds the function pointer from its address.
    ///
    /// # Safety
    /// `address` must be the address of a `Self::Function`, in this process.
    unsafe fn function_at(address: usize) -> Self::Function;

    /// Calls `f` with the tuple's elements.
    fn apply(self, f: Self::Function) -> R;

    /// Encodes the elements, in order (see `wire::encode_value`).
    fn encode(self, output: &mut wire::Parts) -> Result<(), String>;

    /// Reads the elements back; all of `input`, and the tail if any, must be used.
    fn decode(input: &[u8], tail: Option<Vec<u8>>) -> Result<Self, String>;
}

/// Decodes the arguments, calls the function at `function`, and encodes its result into `output`.
///
/// # Safety
/// `function` must be the address, in this process, of a function of type `Args::Function`.
pub(crate) unsafe fn trampoline<Args, R>(
    function: usize,
    input: &[u8],
    tail: Option<Vec<u8>>,
    output: &mut Vec<u8>,
) -> CallStatus
where
    Args: Arguments<R>,
    R: Serialize + 'static,
{
    // SAFETY: forwarded from the caller.
    let f = unsafe { Args::function_at(function) };
    let args: Args = match Args::decode(input, tail) {
        Ok(args) => args,
        Err(error) => {
            output.extend_from_slice(format!("could not decode the arguments: {error}").as_bytes());
            return CallStatus::Transport;
        }
    };
    match panic::catch_unwind(AssertUnwindSafe(|| args.apply(f))) {
        Ok(value) => {
            let encoded =
                panic::catch_unwind(AssertUnwindSafe(|| wire::encode_value(&value, output)));
            drop_quietly(value);
            match encoded {
                Ok(Ok(())) => CallStatus::Returned,
                Ok(Err(error)) => {
                    output.clear();
                    output.extend_from_slice(
                        format!("could not encode the result: {error}").as_bytes(),
                    );
                    CallStatus::Transport
                }
                Err(payload) => {
                    output.clear();
                    output.extend_from_slice(panic_message(&*payload).as_bytes());
                    drop_payload(payload);
                    CallStatus::Panicked
                }
            }
        }
        Err(payload) => {
            output.extend_from_slice(panic_message(&*payload).as_bytes());
            drop_payload(payload);
            CallStatus::Panicked
        }
    }
}

/// Drops a value whose `Drop` might panic without unwinding out of the worker loop.
fn drop_quietly<T>(value: T) {
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| drop(value))) {
        drop_payload(payload);
    }
}

/// The point addresses are measured from: the executable's program headers, which the loader
/// maps at a fixed offset from wherever it places the executable. Measuring from the executable
/// rather than from a function of this crate keeps offsets right even when a program links two
/// copies of this crate (two versions, or a test binary that also depends on the facade).
pub(crate) fn anchor() -> usize {
    // SAFETY: `getauxval` only reads the auxiliary vector the kernel gave the process.
    unsafe { libc::getauxval(libc::AT_PHDR) as usize }
}

/// Whether `address` lies in the code of the program's executable. Only such addresses are the same
/// (relative to the anchor) in a worker: a function in a shared library (a Rust `dylib`, a
/// `prefer-dynamic` standard library) is loaded at an address of its own in each process.
pub(crate) fn in_executable(address: usize) -> bool {
    executable_code()
        .iter()
        .any(|&(start, end)| (start..end).contains(&address))
}

/// The address ranges of the executable's code segments, found once.
fn executable_code() -> &'static [(usize, usize)] {
    static RANGES: OnceLock<Vec<(usize, usize)>> = OnceLock::new();
    RANGES.get_or_init(|| {
        let mut ranges: Vec<(usize, usize)> = Vec::new();
        // SAFETY: `dl_iterate_phdr` calls `first_object` with a valid `dl_phdr_info` and passes our
        // `data` pointer through unchanged; it points at `ranges`, which outlives the call.
        unsafe {
            libc::dl_iterate_phdr(
                Some(first_object),
                (&mut ranges as *mut Vec<(usize, usize)>).cast(),
            );
        }
        ranges
    })
}

/// Collects the executable segments of the first object `dl_iterate_phdr` reports, which is the
/// program's executable, and stops the iteration.
unsafe extern "C" fn first_object(
    info: *mut libc::dl_phdr_info,
    _size: libc::size_t,
    data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: the loader passes a valid `info` whose `dlpi_phdr` points at `dlpi_phnum` program
    // headers, mapped for the life of the process; `data` is the `Vec` passed by `executable_code`.
    unsafe {
        let info = &*info;
        let ranges = &mut *data.cast::<Vec<(usize, usize)>>();
        let headers = std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize);
        for header in headers {
            if header.p_type == libc::PT_LOAD && header.p_flags & libc::PF_X != 0 {
                let start = info.dlpi_addr as usize + header.p_vaddr as usize;
                ranges.push((start, start + header.p_memsz as usize));
            }
        }
    }
    1
}

/// The offset of `address` from the anchor.
pub(crate) fn offset_of(address: usize) -> isize {
    address.wrapping_sub(anchor()) as isize
}

/// The address at `offset` from the anchor.
pub(crate) fn address_at(offset: isize) -> usize {
    anchor().wrapping_add(offset as usize)
}

macro_rules! remote_calls {
    ($($name:ident($($arg:ident: $ty:ident),*);)*) => {$(
        impl<Ret, $($ty),*> Arguments<Ret> for ($($ty,)*)
        where
            $($ty: Serialize + DeserializeOwned + 'static,)*
        {
            type Function = fn($($ty),*) -> Ret;

            unsafe fn function_at(address: usize) -> Self::Function {
                // SAFETY: the caller guarantees `address` is such a function; function pointers
                // and `usize` have the same size on every target Rust supports processes on.
                unsafe { std::mem::transmute::<usize, fn($($ty),*) -> Ret>(address) }
            }

            #[allow(non_snake_case)]
            fn apply(self, f: Self::Function) -> Ret {
                let ($($ty,)*) = self;
                f($($ty),*)
            }

            #[allow(non_snake_case, unused_variables)]
            fn encode(self, output: &mut wire::Parts) -> Result<(), String> {
                let ($($ty,)*) = self;
                $(output.push_value($ty)?;)*
                Ok(())
            }

            #[allow(non_snake_case, unused_mut)]
            fn decode(mut input: &[u8], mut tail: Option<Vec<u8>>) -> Result<Self, String> {
                $(let $ty = wire::decode_value::<$ty>(&mut input, &mut tail)?;)*
                match (input.len(), tail) {
                    (0, None) => Ok(($($ty,)*)),
                    (extra, None) => Err(format!("{extra} unexpected bytes after the arguments")),
                    (_, Some(tail)) => Err(format!("{} unexpected bytes after the arguments", tail.len())),
                }
            }
        }

        #[doc(hidden)]
        #[allow(clippy::too_many_arguments)] // one per argument of the user's function
        pub fn $name<Ret, $($ty),*>(f: fn($($ty),*) -> Ret, $($arg: $ty),*) -> RemoteCall<Ret>
        where
            $($ty: Serialize + DeserializeOwned + 'static,)*
            Ret: Serialize + DeserializeOwned + Send + 'static,
        {
            let trampoline: ErasedTrampoline = trampoline::<($($ty,)*), Ret>;
            let mut arguments = wire::Parts::default();
            let encoded = if in_executable(f as usize) && in_executable(trampoline as usize) {
                <($($ty,)*) as Arguments<Ret>>::encode(($($arg,)*), &mut arguments)
                    .map(|()| arguments)
                    .map_err(|why| format!("could not encode the arguments: {why}"))
            } else {
                Err("the function is not in the program's executable (it is in a shared \
                     library), so a worker process cannot find it"
                    .to_string())
            };
            RemoteCall {
                function: offset_of(f as usize),
                trampoline: offset_of(trampoline as usize),
                arguments: encoded,
                _result: std::marker::PhantomData,
            }
        }
    )*};
}

remote_calls! {
    remote0();
    remote1(a1: A1);
    remote2(a1: A1, a2: A2);
    remote3(a1: A1, a2: A2, a3: A3);
    remote4(a1: A1, a2: A2, a3: A3, a4: A4);
    remote5(a1: A1, a2: A2, a3: A3, a4: A4, a5: A5);
    remote6(a1: A1, a2: A2, a3: A3, a4: A4, a5: A5, a6: A6);
    remote7(a1: A1, a2: A2, a3: A3, a4: A4, a5: A5, a6: A6, a7: A7);
    remote8(a1: A1, a2: A2, a3: A3, a4: A4, a5: A5, a6: A6, a7: A7, a8: A8);
    remote9(a1: A1, a2: A2, a3: A3, a4: A4, a5: A5, a6: A6, a7: A7, a8: A8, a9: A9);
    remote10(a1: A1, a2: A2, a3: A3, a4: A4, a5: A5, a6: A6, a7: A7, a8: A8, a9: A9, a10: A10);
    remote11(a1: A1, a2: A2, a3: A3, a4: A4, a5: A5, a6: A6, a7: A7, a8: A8, a9: A9, a10: A10, a11: A11);
    remote12(a1: A1, a2: A2, a3: A3, a4: A4, a5: A5, a6: A6, a7: A7, a8: A8, a9: A9, a10: A10, a11: A11, a12: A12);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(a: u64, b: u64) -> u64 {
        a + b
    }

    fn run(call: &RemoteCall<impl Sized>) -> (CallStatus, Vec<u8>) {
        let trampoline = address_at(call.trampoline);
        // SAFETY: the address is that of an `ErasedTrampoline`, taken in this process.
        let trampoline = unsafe { std::mem::transmute::<usize, ErasedTrampoline>(trampoline) };
        let mut output = Vec::new();
        let arguments = call.arguments.as_ref().unwrap().concat();
        // SAFETY: the function address was taken from the matching function type.
        let status =
            unsafe { trampoline(address_at(call.function), &arguments, None, &mut output) };
        (status, output)
    }

    #[test]
    fn a_call_round_trips_through_offsets() {
        let call = remote2(add, 40, 2);
        let (status, output) = run(&call);
        assert_eq!(status, CallStatus::Returned);
        assert_eq!(wire::decode_whole::<u64>(&output).unwrap(), 42);
    }

    #[test]
    fn functions_of_this_program_are_in_its_executable_and_libc_is_not() {
        assert!(in_executable(add as fn(u64, u64) -> u64 as usize));
        assert!(!in_executable(
            libc::getpid as unsafe extern "C" fn() -> libc::pid_t as usize
        ));
        assert!(!in_executable(0));
        let call = remote0(|| {
            // SAFETY: `getpid` has no preconditions.
            unsafe { libc::getpid() }
        });
        assert!(
            call.arguments.is_ok(),
            "a closure of this program is sendable"
        );
    }

    #[test]
    fn a_byte_vector_result_round_trips() {
        let call = remote1(|n: u64| vec![7u8; n as usize], 100_000);
        let (status, output) = run(&call);
        assert_eq!(status, CallStatus::Returned);
        assert_eq!(
            wire::decode_whole::<Vec<u8>>(&output).unwrap(),
            vec![7u8; 100_000]
        );
    }

    #[test]
    fn a_panic_is_reported_with_its_message() {
        let call = remote1(|s: String| -> u8 { panic!("bad {s}") }, "input".to_string());
        let (status, output) = run(&call);
        assert_eq!(status, CallStatus::Panicked);
        assert_eq!(String::from_utf8(output).unwrap(), "bad input");
    }

    #[test]
    fn truncated_arguments_are_a_transport_error() {
        let call = remote1(|s: String| s.len(), "some text".to_string());
        let mut arguments = call.arguments.as_ref().unwrap().concat();
        arguments.truncate(3);
        let trampoline = address_at(call.trampoline);
        // SAFETY: as in `run`.
        let trampoline = unsafe { std::mem::transmute::<usize, ErasedTrampoline>(trampoline) };
        let mut output = Vec::new();
        // SAFETY: as in `run`.
        let status =
            unsafe { trampoline(address_at(call.function), &arguments, None, &mut output) };
        assert_eq!(status, CallStatus::Transport);
        assert!(String::from_utf8(output)
            .unwrap()
            .starts_with("could not decode the arguments"));
    }
}
