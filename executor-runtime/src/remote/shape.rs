//! How each argument of a remote call crosses to the worker ([`Shape`]): an owned value as
//! itself; a `&str` or `&[u8]` as its contents, handed to the function as a reference into the
//! worker's copy. The shape is picked at the `submit` call, where the argument's type is known
//! ([`Probe`]), and [`Pass`] re-borrows a reference for the call alone, which is what makes
//! borrowed arguments sound.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::remote::wire;

/// How a value of type `A` crosses to a worker: encoded from `A`, decoded as `Owned`, and handed to
/// the function as `A` again.
///
/// # Safety
/// `view` may return a value that borrows from `owned` with a lifetime the type system does not
/// see: the implementation must only do so for `A` = a shared reference, and callers use the value
/// only while `owned` lives (see [`trampoline`]).
#[doc(hidden)]
pub unsafe trait Shape<A> {
    /// What the worker decodes.
    type Owned: DeserializeOwned + 'static;

    /// Appends the value's encoding.
    fn encode(value: A, output: &mut wire::Parts) -> Result<(), String>;

    /// The argument for the function, from the decoded value.
    ///
    /// # Safety
    /// A returned reference must not be used after `owned` is dropped or changed.
    unsafe fn view(owned: &mut Option<Self::Owned>) -> A;
}

/// An owned argument: it crosses as itself.
#[doc(hidden)]
pub struct Owned;

/// A `&str` argument: it crosses as its text (raw bytes, as a `String`); the worker passes the function a `&str` into its
/// own copy, which lives until the call returns.
#[doc(hidden)]
pub struct BorrowedStr;

/// A `&[u8]` argument: as [`BorrowedStr`], for bytes (copied raw, without serde).
#[doc(hidden)]
pub struct BorrowedBytes;

// SAFETY: `view` moves the decoded value out; nothing borrows.
unsafe impl<A: Serialize + DeserializeOwned + 'static> Shape<A> for Owned {
    type Owned = A;

    fn encode(value: A, output: &mut wire::Parts) -> Result<(), String> {
        output.push_value(value)
    }

    unsafe fn view(owned: &mut Option<A>) -> A {
        owned.take().expect("each argument is viewed once")
    }
}

// SAFETY: `view` returns a `&'x str` into `owned`, which the caller keeps alive and unchanged
// while the reference is used (the trampoline drops it only after the call returns).
unsafe impl<'x> Shape<&'x str> for BorrowedStr {
    type Owned = String;

    fn encode(value: &'x str, output: &mut wire::Parts) -> Result<(), String> {
        // Raw, as a `String` crosses, and said to be text: the worker checks the UTF-8 once, as
        // the bytes arrive (see `remote::tail`).
        output.push_bytes(value.as_bytes(), true);
        Ok(())
    }

    unsafe fn view(owned: &mut Option<String>) -> &'x str {
        let text: &str = owned.as_deref().expect("decoded before the call");
        // SAFETY: the caller keeps `owned` alive and unchanged while the result is used.
        unsafe { std::mem::transmute::<&str, &'x str>(text) }
    }
}

// SAFETY: as for `BorrowedStr`.
unsafe impl<'x> Shape<&'x [u8]> for BorrowedBytes {
    type Owned = Vec<u8>;

    fn encode(value: &'x [u8], output: &mut wire::Parts) -> Result<(), String> {
        output.push_bytes(value, false);
        Ok(())
    }

    unsafe fn view(owned: &mut Option<Vec<u8>>) -> &'x [u8] {
        let bytes: &[u8] = owned.as_deref().expect("decoded before the call");
        // SAFETY: the caller keeps `owned` alive and unchanged while the result is used.
        unsafe { std::mem::transmute::<&[u8], &'x [u8]>(bytes) }
    }
}

/// Picks an argument's [`Shape`] at the `submit` call, where its type is known: the inherent
/// methods below win over [`OwnedProbe`]'s for `&str` and `&[u8]`; every other type is `Owned`.
#[doc(hidden)]
pub struct Probe<'p, T>(pub &'p T);

impl Probe<'_, &str> {
    #[doc(hidden)]
    pub fn shape(&self) -> BorrowedStr {
        BorrowedStr
    }
}

impl Probe<'_, &[u8]> {
    #[doc(hidden)]
    pub fn shape(&self) -> BorrowedBytes {
        BorrowedBytes
    }
}

/// See [`Probe`]. The bound is checked here, at the `submit` call, so that an argument that cannot
/// cross is reported there.
#[doc(hidden)]
pub trait OwnedProbe<T> {
    #[doc(hidden)]
    fn shape(&self) -> Owned
    where
        T: Serialize + DeserializeOwned + 'static,
    {
        Owned
    }
}

impl<T> OwnedProbe<T> for Probe<'_, T> {}

/// Hands an argument to `remote<n>`, re-borrowing a `&str` or `&[u8]` for a lifetime local to the
/// `submit` call. That is the soundness check for borrowed arguments: the function must then
/// accept a reference that lives no longer than the call, so it cannot keep one (a function that
/// wants `&'static str` is a compile error), and the worker may pass it a reference into a buffer
/// that lives just as long.
#[doc(hidden)]
pub struct Pass<T>(pub T);

impl<'x> Pass<&'x str> {
    #[doc(hidden)]
    pub fn pass<'l>(self, _call: &'l ()) -> &'l str
    where
        'x: 'l,
    {
        self.0
    }
}

impl<'x> Pass<&'x [u8]> {
    #[doc(hidden)]
    pub fn pass<'l>(self, _call: &'l ()) -> &'l [u8]
    where
        'x: 'l,
    {
        self.0
    }
}

/// See [`Pass`].
#[doc(hidden)]
pub trait OwnedPass<T> {
    #[doc(hidden)]
    fn pass(self, _call: &()) -> T;
}

impl<T> OwnedPass<T> for Pass<T> {
    fn pass(self, _call: &()) -> T {
        self.0
    }
}
