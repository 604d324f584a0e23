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
//! The handshake checks that the worker's executable is the parent's (see `process::worker`), which
//! is what makes the addresses meaningful. Arguments and results must be owned
//! (`Serialize + DeserializeOwned`): a worker decodes them from a buffer that does not outlive the call.

use std::panic::{self, AssertUnwindSafe};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::block::options::{PoolOptions, ProcessInitializer};
use crate::remote::executable::{in_executable, offset_of};
use crate::remote::protocol;
use crate::remote::shape::Shape;
use crate::remote::tail::Tail;
use crate::remote::wire;
use crate::task::error::{drop_payload, Panic, PanicLocation};
use crate::task::panic as task_panic;

/// A call ready to be sent: the function and trampoline addresses, and the encoded arguments.
#[doc(hidden)]
pub struct RemoteCall<R> {
    pub(crate) function: isize,
    pub(crate) trampoline: isize,
    /// The encoded argument tuple, or why the call cannot be sent.
    pub(crate) arguments: Result<wire::Parts, String>,
    /// The function's name, for a worker's death to name the call; `None` for closures.
    pub(crate) name: Option<&'static str>,
    pub(crate) _result: std::marker::PhantomData<fn() -> R>,
}

impl<R> RemoteCall<R> {
    /// The same call, naming its function (see `callee_name<n>`): `None` leaves it unnamed.
    pub fn named(mut self, name: Option<&'static str>) -> Self {
        self.name = name;
        self
    }
}

/// The name of a function item's type, which is the function's path (`my_crate::crunch`); `None`
/// for a closure or a function pointer, whose type names no function.
fn function_name<F>() -> Option<&'static str> {
    let name = std::any::type_name::<F>();
    let unnamed = name.contains("{{closure}}")
        || name.starts_with("fn(")
        || name.starts_with("unsafe ")
        || name.starts_with("extern ");
    (!unnamed).then_some(name)
}

/// A call built by `remote<n>`, not yet known to be safe to send.
#[doc(hidden)]
pub struct UncheckedCall<R>(RemoteCall<R>);

impl<R> UncheckedCall<R> {
    /// The call, to send.
    ///
    /// # Safety
    /// Every argument whose shape is `BorrowedStr` or `BorrowedBytes` must have been passed
    /// through [`Pass`] for a lifetime local to the `submit` call, and `f` coerced (by
    /// `signature<n>`) to take exactly those argument types: that is what proves `f` cannot keep
    /// the reference, which in the worker points into a buffer that lives only for the call.
    pub unsafe fn assume_call_local(self) -> RemoteCall<R> {
        self.0
    }
}

/// A panic, as it crosses from a worker to its pool: the outcome of a call with
/// [`CallStatus::Panicked`] and the failed items of a chunk. Encoded by [`encode_panic`] and in
/// chunk results, decoded by [`decode_panic`] and [`WirePanic::into_panic`]: the protocol is
/// internal, and both sides are the same binary.
#[derive(Serialize, Deserialize)]
pub(crate) struct WirePanic {
    message: String,
    /// File, line, column.
    location: Option<(String, u32, u32)>,
    backtrace: Option<String>,
}

impl WirePanic {
    fn from_panic(panic: Panic) -> Self {
        WirePanic {
            message: panic.message().to_string(),
            location: panic
                .location()
                .map(|at| (at.file().to_string(), at.line(), at.column())),
            backtrace: panic.backtrace().map(str::to_string),
        }
    }

    pub(crate) fn into_panic(self) -> Panic {
        Panic::new(self.message)
            .with_location(
                self.location
                    .map(|(file, line, column)| PanicLocation::new(file, line, column)),
            )
            .with_backtrace(self.backtrace)
    }
}

/// What a call gives back in the worker: the encoded result (or message), and the raw tail of a
/// large byte vector or string result, which is sent from its own buffer rather than copied into
/// `bytes` (the last value in `bytes` is then its length).
#[derive(Debug, Default)]
pub(crate) struct CallOutput {
    pub(crate) bytes: Vec<u8>,
    pub(crate) tail: Option<Tail>,
}

impl CallOutput {
    /// Empties both parts, keeping the encoded part's buffer.
    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.tail = None;
    }

    /// The length of the raw tail.
    pub(crate) fn tail_len(&self) -> usize {
        self.tail.as_ref().map_or(0, Tail::len)
    }

    /// Replaces the output with a message (for [`CallStatus::Transport`]).
    pub(crate) fn set_message(&mut self, message: &[u8]) {
        self.clear();
        self.bytes.extend_from_slice(message);
    }
}

/// Writes a caught panic into a call's output, for [`CallStatus::Panicked`].
fn encode_panic(panic: Panic, output: &mut CallOutput) -> CallStatus {
    output.clear();
    let output = &mut output.bytes;
    let wire = WirePanic::from_panic(panic);
    if wire::encode_value(&wire, output).is_err() {
        // Strings always encode; were they not to, the message alone still crosses.
        output.clear();
        output.extend_from_slice(wire.message.as_bytes());
    }
    CallStatus::Panicked
}

/// The panic in the output of a call that ended with [`CallStatus::Panicked`]. Output that is
/// not an encoded panic (it cannot come from this binary's workers) is taken as the message.
pub(crate) fn decode_panic(output: &[u8]) -> Panic {
    match wire::decode_whole::<WirePanic>(output) {
        Ok(wire) => wire.into_panic(),
        Err(_) => Panic::new(String::from_utf8_lossy(output).into_owned()),
    }
}

/// A call of `f` on each item of `chunk`, for `map` on the Process backend: the worker answers
/// with one result per item (a panic in one item fails that item only).
pub(crate) fn chunk_call<T, R>(
    f: fn(T) -> R,
    chunk: Vec<T>,
) -> RemoteCall<Vec<Result<R, WirePanic>>>
where
    T: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    RemoteCall::new(f as usize, chunk_trampoline::<T, R>, |parts| {
        parts.push_value(chunk)
    })
}

impl<R> RemoteCall<R> {
    /// A call of the function at `function` through `trampoline`, with the arguments `encode`
    /// writes; it cannot be sent (and says why) if either address is outside the executable, or
    /// the arguments cannot be encoded or are over the message limit (`protocol::MAX_ARGUMENTS`).
    fn new(
        function: usize,
        trampoline: ErasedTrampoline,
        encode: impl FnOnce(&mut wire::Parts) -> Result<(), String>,
    ) -> Self {
        let arguments = if in_executable(function) && in_executable(trampoline as usize) {
            let mut parts = wire::Parts::default();
            // A panicking `Serialize` fails this call, as a panicking `Deserialize` of a result
            // does, rather than the block that submitted it.
            let encoded =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| encode(&mut parts)))
                    .unwrap_or_else(|payload| {
                        let message = crate::task::error::panic_message(&*payload);
                        crate::task::error::drop_payload(payload);
                        Err(format!("a `Serialize` implementation panicked: {message}"))
                    });
            // Arguments no message can carry fail here, unsent, rather than in the worker.
            encoded
                .map_err(|why| format!("could not encode the arguments: {why}"))
                .and_then(|()| protocol::check_arguments_len(parts.len()))
                .map(|()| parts)
        } else {
            Err(
                "the function is not in the program's executable (it is in a shared library), \
                 so a worker process cannot find it"
                    .to_string(),
            )
        };
        RemoteCall {
            function: offset_of(function),
            trampoline: offset_of(trampoline as usize),
            arguments,
            name: None,
            _result: std::marker::PhantomData,
        }
    }
}

/// The trampoline of a [`chunk_call`].
///
/// # Safety
/// `function` must be the address, in this process, of a `fn(T) -> R`.
unsafe fn chunk_trampoline<T, R>(
    function: usize,
    input: &[u8],
    tail: Option<Tail>,
    output: &mut CallOutput,
) -> CallStatus
where
    T: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    // SAFETY: forwarded from the caller.
    let f = unsafe { std::mem::transmute::<usize, fn(T) -> R>(function) };
    let mut input = input;
    let mut tail = tail;
    let chunk: Vec<T> = match wire::decode_value(&mut input, &mut tail) {
        Ok(chunk) => chunk,
        Err(error) => {
            output.set_message(format!("could not decode the arguments: {error}").as_bytes());
            return CallStatus::Transport;
        }
    };
    let results: Vec<Result<R, WirePanic>> = chunk
        .into_iter()
        .map(|item| task_panic::catch(|| f(item)).map_err(WirePanic::from_panic))
        .collect();
    encode_result(results, output)
}

impl PoolOptions {
    /// `initializer = f` (Process): set by the `pool!` macro from an encoded call.
    pub fn process_initializer<R>(&mut self, call: RemoteCall<R>) -> &mut Self {
        self.process_initializer = Some(std::sync::Arc::new(ProcessInitializer {
            function: call.function,
            trampoline: call.trampoline,
            arguments: call.arguments.map(|parts| parts.concat()),
        }));
        self
    }
}

/// How a call ended in the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallStatus {
    /// The output holds the encoded result.
    Returned = 0,
    /// The output holds the panic: message, location and backtrace (see [`decode_panic`]).
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
/// encoded arguments and their raw tail (see `wire::Parts`), and the output for the encoded result
/// (or message).
pub(crate) type ErasedTrampoline =
    unsafe fn(usize, &[u8], Option<Tail>, &mut CallOutput) -> CallStatus;

/// The arguments of one call, as `((S1, ..., Sn), (A1, ..., An))`: how each crosses (its
/// [`Shape`]) and the types the function takes.
pub(crate) trait Arguments<R>: Sized {
    /// `fn(A1, ..., An) -> R`.
    type Function: Copy;
    /// `(A1, ..., An)`.
    type Values;

    /// Rebuilds the function pointer from its address.
    ///
    /// # Safety
    /// `address` must be the address of a `Self::Function`, in this process.
    unsafe fn function_at(address: usize) -> Self::Function;

    /// Encodes the values, in order.
    fn encode(values: Self::Values, output: &mut wire::Parts) -> Result<(), String>;

    /// Decodes the values (all of `input`, and the tail if any, must be used) and calls `f` with
    /// them; `Err` if they cannot be decoded.
    fn decode_and_call(f: Self::Function, input: &[u8], tail: Option<Tail>) -> Result<R, String>;
}

/// Decodes the arguments, calls the function at `function`, and encodes its result into `output`.
///
/// # Safety
/// `function` must be the address, in this process, of a function of type `Args::Function`.
pub(crate) unsafe fn trampoline<Args, R>(
    function: usize,
    input: &[u8],
    tail: Option<Tail>,
    output: &mut CallOutput,
) -> CallStatus
where
    Args: Arguments<R>,
    R: Serialize + 'static,
{
    // SAFETY: forwarded from the caller.
    let f = unsafe { Args::function_at(function) };
    match task_panic::catch(|| Args::decode_and_call(f, input, tail)) {
        Ok(Ok(value)) => encode_result(value, output),
        Ok(Err(error)) => {
            output.set_message(format!("could not decode the arguments: {error}").as_bytes());
            CallStatus::Transport
        }
        Err(panic) => encode_panic(panic, output),
    }
}

/// Encodes a call's result into `output`; a panic in its `Serialize` or its `Drop` is reported
/// as the call's panic rather than unwinding through the worker loop. A large byte vector or string
/// becomes the output's raw tail, moved rather than copied.
fn encode_result<R: Serialize + 'static>(value: R, output: &mut CallOutput) -> CallStatus {
    let value = match wire::into_raw(value) {
        Ok(tail) => {
            output
                .bytes
                .extend_from_slice(&(tail.len() as u64).to_le_bytes());
            if tail.len() >= wire::OWN_PART {
                output.tail = Some(tail);
            } else {
                output.bytes.extend_from_slice(tail.as_bytes());
            }
            return CallStatus::Returned;
        }
        Err(value) => value,
    };
    let encoded = task_panic::catch(|| wire::encode_value(&value, &mut output.bytes));
    drop_quietly(value);
    match encoded {
        Ok(Ok(())) => CallStatus::Returned,
        Ok(Err(error)) => {
            output.set_message(format!("could not encode the result: {error}").as_bytes());
            CallStatus::Transport
        }
        Err(panic) => encode_panic(panic, output),
    }
}

/// Drops a value whose `Drop` might panic without unwinding out of the worker loop.
fn drop_quietly<T>(value: T) {
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| drop(value))) {
        drop_payload(payload);
    }
}

macro_rules! remote_calls {
    ($($name:ident($($arg:ident: $ty:ident / $shape:ident / $owned:ident),*);)*) => {$(
        impl<Ret, $($shape, $ty),*> Arguments<Ret> for (($($shape,)*), ($($ty,)*))
        where
            $($shape: Shape<$ty>,)*
        {
            type Function = fn($($ty),*) -> Ret;
            type Values = ($($ty,)*);

            unsafe fn function_at(address: usize) -> Self::Function {
                // SAFETY: the caller guarantees `address` is such a function; function pointers
                // and `usize` have the same size on every target Rust supports processes on.
                unsafe { std::mem::transmute::<usize, fn($($ty),*) -> Ret>(address) }
            }

            #[allow(unused_variables)]
            fn encode(values: Self::Values, output: &mut wire::Parts) -> Result<(), String> {
                let ($($arg,)*) = values;
                $($shape::encode($arg, output)?;)*
                Ok(())
            }

            #[allow(unused_mut)]
            fn decode_and_call(
                f: Self::Function,
                mut input: &[u8],
                mut tail: Option<Tail>,
            ) -> Result<Ret, String> {
                $(let mut $owned = Some(wire::decode_value::<$shape::Owned>(&mut input, &mut tail)?);)*
                match (input.len(), &tail) {
                    (0, None) => {}
                    (extra, None) => return Err(format!("{extra} unexpected bytes after the arguments")),
                    (_, Some(tail)) => return Err(format!("{} unexpected bytes after the arguments", tail.len())),
                }
                // SAFETY: the decoded values live in this frame, untouched, until `f` returns;
                // a borrowed argument cannot outlive the call (see `Pass`), and the result is
                // `'static`, so nothing borrows them afterwards.
                Ok(f($(unsafe { $shape::view(&mut $owned) }),*))
            }
        }

        /// The call `f(args...)`, encoded; see [`UncheckedCall`] for what makes it sendable.
        #[doc(hidden)]
        #[allow(clippy::too_many_arguments)] // one per argument of the user's function
        pub fn $name<Ret, $($shape, $ty),*>(
            _shapes: ($($shape,)*),
            f: fn($($ty),*) -> Ret,
            $($arg: $ty),*
        ) -> UncheckedCall<Ret>
        where
            $($shape: Shape<$ty>,)*
            Ret: Serialize + DeserializeOwned + Send + 'static,
        {
            let trampoline: ErasedTrampoline = trampoline::<(($($shape,)*), ($($ty,)*)), Ret>;
            UncheckedCall(RemoteCall::new(f as usize, trampoline, |parts| {
                <(($($shape,)*), ($($ty,)*)) as Arguments<Ret>>::encode(($($arg,)*), parts)
            }))
        }
    )*};
}

macro_rules! signatures {
    ($($name:ident($($arg:ident: $ty:ident),*);)*) => {$(
        /// Coerces `f` to a function pointer taking exactly the argument types given: the check
        /// that it captures nothing, and, for borrowed arguments, that it accepts the call-local
        /// lifetime `Pass` gave them. The argument references only carry their types.
        #[doc(hidden)]
        #[allow(clippy::too_many_arguments)]
        pub fn $name<Ret, $($ty),*>(f: fn($($ty),*) -> Ret, $(_: &$ty),*) -> fn($($ty),*) -> Ret
        where
            Ret: Serialize + DeserializeOwned + Send + 'static,
        {
            f
        }
    )*};
}

signatures! {
    signature0();
    signature1(a1: A1);
    signature2(a1: A1, a2: A2);
    signature3(a1: A1, a2: A2, a3: A3);
    signature4(a1: A1, a2: A2, a3: A3, a4: A4);
    signature5(a1: A1, a2: A2, a3: A3, a4: A4, a5: A5);
    signature6(a1: A1, a2: A2, a3: A3, a4: A4, a5: A5, a6: A6);
    signature7(a1: A1, a2: A2, a3: A3, a4: A4, a5: A5, a6: A6, a7: A7);
    signature8(a1: A1, a2: A2, a3: A3, a4: A4, a5: A5, a6: A6, a7: A7, a8: A8);
    signature9(a1: A1, a2: A2, a3: A3, a4: A4, a5: A5, a6: A6, a7: A7, a8: A8, a9: A9);
    signature10(a1: A1, a2: A2, a3: A3, a4: A4, a5: A5, a6: A6, a7: A7, a8: A8, a9: A9, a10: A10);
    signature11(a1: A1, a2: A2, a3: A3, a4: A4, a5: A5, a6: A6, a7: A7, a8: A8, a9: A9, a10: A10, a11: A11);
    signature12(a1: A1, a2: A2, a3: A3, a4: A4, a5: A5, a6: A6, a7: A7, a8: A8, a9: A9, a10: A10, a11: A11, a12: A12);
}

macro_rules! callee_names {
    ($($name:ident($($arg:ident: $ty:ident),*);)*) => {$(
        /// The name of the function `f` names (a path given to `submit`), for a worker's death to
        /// say what it was running; `None` for a closure or a function pointer. The argument
        /// references only carry their types, so that a generic function is inferred as for
        /// `signature<n>`.
        #[doc(hidden)]
        #[allow(clippy::too_many_arguments)]
        pub fn $name<F, Ret, $($ty),*>(_f: &F, $(_: &$ty),*) -> Option<&'static str>
        where
            F: Fn($($ty),*) -> Ret,
        {
            function_name::<F>()
        }
    )*};
}

callee_names! {
    callee_name0();
    callee_name1(a1: A1);
    callee_name2(a1: A1, a2: A2);
    callee_name3(a1: A1, a2: A2, a3: A3);
    callee_name4(a1: A1, a2: A2, a3: A3, a4: A4);
    callee_name5(a1: A1, a2: A2, a3: A3, a4: A4, a5: A5);
    callee_name6(a1: A1, a2: A2, a3: A3, a4: A4, a5: A5, a6: A6);
    callee_name7(a1: A1, a2: A2, a3: A3, a4: A4, a5: A5, a6: A6, a7: A7);
    callee_name8(a1: A1, a2: A2, a3: A3, a4: A4, a5: A5, a6: A6, a7: A7, a8: A8);
    callee_name9(a1: A1, a2: A2, a3: A3, a4: A4, a5: A5, a6: A6, a7: A7, a8: A8, a9: A9);
    callee_name10(a1: A1, a2: A2, a3: A3, a4: A4, a5: A5, a6: A6, a7: A7, a8: A8, a9: A9, a10: A10);
    callee_name11(a1: A1, a2: A2, a3: A3, a4: A4, a5: A5, a6: A6, a7: A7, a8: A8, a9: A9, a10: A10, a11: A11);
    callee_name12(a1: A1, a2: A2, a3: A3, a4: A4, a5: A5, a6: A6, a7: A7, a8: A8, a9: A9, a10: A10, a11: A11, a12: A12);
}

remote_calls! {
    remote0();
    remote1(a1: A1 / S1 / o1);
    remote2(a1: A1 / S1 / o1, a2: A2 / S2 / o2);
    remote3(a1: A1 / S1 / o1, a2: A2 / S2 / o2, a3: A3 / S3 / o3);
    remote4(a1: A1 / S1 / o1, a2: A2 / S2 / o2, a3: A3 / S3 / o3, a4: A4 / S4 / o4);
    remote5(a1: A1 / S1 / o1, a2: A2 / S2 / o2, a3: A3 / S3 / o3, a4: A4 / S4 / o4, a5: A5 / S5 / o5);
    remote6(a1: A1 / S1 / o1, a2: A2 / S2 / o2, a3: A3 / S3 / o3, a4: A4 / S4 / o4, a5: A5 / S5 / o5, a6: A6 / S6 / o6);
    remote7(a1: A1 / S1 / o1, a2: A2 / S2 / o2, a3: A3 / S3 / o3, a4: A4 / S4 / o4, a5: A5 / S5 / o5, a6: A6 / S6 / o6, a7: A7 / S7 / o7);
    remote8(a1: A1 / S1 / o1, a2: A2 / S2 / o2, a3: A3 / S3 / o3, a4: A4 / S4 / o4, a5: A5 / S5 / o5, a6: A6 / S6 / o6, a7: A7 / S7 / o7, a8: A8 / S8 / o8);
    remote9(a1: A1 / S1 / o1, a2: A2 / S2 / o2, a3: A3 / S3 / o3, a4: A4 / S4 / o4, a5: A5 / S5 / o5, a6: A6 / S6 / o6, a7: A7 / S7 / o7, a8: A8 / S8 / o8, a9: A9 / S9 / o9);
    remote10(a1: A1 / S1 / o1, a2: A2 / S2 / o2, a3: A3 / S3 / o3, a4: A4 / S4 / o4, a5: A5 / S5 / o5, a6: A6 / S6 / o6, a7: A7 / S7 / o7, a8: A8 / S8 / o8, a9: A9 / S9 / o9, a10: A10 / S10 / o10);
    remote11(a1: A1 / S1 / o1, a2: A2 / S2 / o2, a3: A3 / S3 / o3, a4: A4 / S4 / o4, a5: A5 / S5 / o5, a6: A6 / S6 / o6, a7: A7 / S7 / o7, a8: A8 / S8 / o8, a9: A9 / S9 / o9, a10: A10 / S10 / o10, a11: A11 / S11 / o11);
    remote12(a1: A1 / S1 / o1, a2: A2 / S2 / o2, a3: A3 / S3 / o3, a4: A4 / S4 / o4, a5: A5 / S5 / o5, a6: A6 / S6 / o6, a7: A7 / S7 / o7, a8: A8 / S8 / o8, a9: A9 / S9 / o9, a10: A10 / S10 / o10, a11: A11 / S11 / o11, a12: A12 / S12 / o12);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::executable::address_at;
    use crate::remote::shape::{BorrowedBytes, BorrowedStr, Owned};

    fn add(a: u64, b: u64) -> u64 {
        a + b
    }

    fn run(call: &RemoteCall<impl Sized>) -> (CallStatus, Vec<u8>) {
        let (status, output) = run_with_tail(call);
        assert!(output.tail.is_none(), "no raw tail");
        (status, output.bytes)
    }

    fn run_with_tail(call: &RemoteCall<impl Sized>) -> (CallStatus, CallOutput) {
        let trampoline = address_at(call.trampoline);
        // SAFETY: the address is that of an `ErasedTrampoline`, taken in this process.
        let trampoline = unsafe { std::mem::transmute::<usize, ErasedTrampoline>(trampoline) };
        let mut output = CallOutput::default();
        let arguments = call.arguments.as_ref().unwrap().concat();
        // SAFETY: the function address was taken from the matching function type.
        let status =
            unsafe { trampoline(address_at(call.function), &arguments, None, &mut output) };
        (status, output)
    }

    #[test]
    fn a_call_round_trips_through_offsets() {
        // SAFETY: no borrowed arguments.
        let call = unsafe { remote2((Owned, Owned), add, 40, 2).assume_call_local() };
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
        fn pid() -> libc::pid_t {
            // SAFETY: `getpid` has no preconditions.
            unsafe { libc::getpid() }
        }
        // SAFETY: no arguments.
        let call = unsafe { remote0((), pid).assume_call_local() };
        assert!(
            call.arguments.is_ok(),
            "a closure of this program is sendable"
        );
    }

    #[test]
    fn a_large_byte_vector_result_is_moved_into_the_raw_tail() {
        // SAFETY: no borrowed arguments.
        let call = unsafe {
            remote1((Owned,), |n: u64| vec![7u8; n as usize], 100_000).assume_call_local()
        };
        let (status, output) = run_with_tail(&call);
        assert_eq!(status, CallStatus::Returned);
        assert_eq!(output.bytes, 100_000u64.to_le_bytes());
        assert_eq!(output.tail_len(), 100_000);
        assert_eq!(
            wire::decode_with_tail::<Vec<u8>>(&output.bytes, output.tail).unwrap(),
            vec![7u8; 100_000]
        );
    }

    #[test]
    fn string_results_cross_raw_inline_or_as_a_tail_around_the_threshold() {
        for len in [0, 1, wire::OWN_PART - 1, wire::OWN_PART, wire::OWN_PART + 1] {
            // SAFETY: no borrowed arguments.
            let call = unsafe {
                remote1((Owned,), |n: u64| "é".repeat(n as usize / 2), len as u64)
                    .assume_call_local()
            };
            let (status, output) = run_with_tail(&call);
            assert_eq!(status, CallStatus::Returned);
            let expected = "é".repeat(len / 2);
            assert_eq!(output.tail.is_some(), expected.len() >= wire::OWN_PART);
            assert!(
                output.tail.as_ref().is_none_or(Tail::is_text),
                "a string's tail is text"
            );
            assert_eq!(
                wire::decode_with_tail::<String>(&output.bytes, output.tail).unwrap(),
                expected
            );
        }
    }

    #[test]
    fn a_string_result_that_is_not_utf8_is_an_error() {
        let bytes = (wire::OWN_PART as u64).to_le_bytes();
        let tail = Some(Tail::Bytes(vec![0xff; wire::OWN_PART]));
        let error = wire::decode_with_tail::<String>(&bytes, tail).unwrap_err();
        assert!(error.contains("not UTF-8"), "{error}");
        let mut inline = 2u64.to_le_bytes().to_vec();
        inline.extend_from_slice(&[0xc3, 0x28]);
        assert!(wire::decode_whole::<String>(&inline)
            .unwrap_err()
            .contains("not UTF-8"));
    }

    #[test]
    fn borrowed_text_and_bytes_arrive_as_views_of_the_worker_copy() {
        fn describe(text: &str, bytes: &[u8], n: u32) -> String {
            format!("{text}:{}:{n}", bytes.len())
        }
        let big = vec![1u8; 100_000];
        // SAFETY: `describe` takes its references for any lifetime.
        let call = unsafe {
            remote3(
                (BorrowedStr, BorrowedBytes, Owned),
                describe,
                "text",
                big.as_slice(),
                7,
            )
            .assume_call_local()
        };
        let (status, output) = run(&call);
        assert_eq!(status, CallStatus::Returned);
        assert_eq!(
            wire::decode_whole::<String>(&output).unwrap(),
            "text:100000:7"
        );
    }

    #[test]
    fn a_panic_is_reported_with_its_message_and_location() {
        let line = line!() + 5;
        // SAFETY: no borrowed arguments.
        let call = unsafe {
            remote1(
                (Owned,),
                |s: String| -> u8 { panic!("bad {s}") },
                "input".to_string(),
            )
            .assume_call_local()
        };
        let (status, output) = run(&call);
        assert_eq!(status, CallStatus::Panicked);
        let panic = decode_panic(&output);
        assert_eq!(panic.message(), "bad input");
        let location = panic.location().expect("the location crosses");
        assert_eq!((location.file(), location.line()), (file!(), line));
    }

    #[test]
    fn truncated_arguments_are_a_transport_error() {
        // SAFETY: no borrowed arguments.
        let call = unsafe {
            remote1((Owned,), |s: String| s.len(), "some text".to_string()).assume_call_local()
        };
        let mut arguments = call.arguments.as_ref().unwrap().concat();
        arguments.truncate(3);
        let trampoline = address_at(call.trampoline);
        // SAFETY: as in `run`.
        let trampoline = unsafe { std::mem::transmute::<usize, ErasedTrampoline>(trampoline) };
        let mut output = CallOutput::default();
        // SAFETY: as in `run`.
        let status =
            unsafe { trampoline(address_at(call.function), &arguments, None, &mut output) };
        assert_eq!(status, CallStatus::Transport);
        assert!(String::from_utf8(output.bytes)
            .unwrap()
            .starts_with("could not decode the arguments"));
    }
}
