//! Task memory: every task (its closure or call, and its completion) is one allocation, made by
//! [`allocate`] and given back by [`free`], which keeps it for the thread's next task of the same
//! layout rather than return it to the global allocator.
//!
//! Why: the caller of a block of 20,000 tiny tasks holds their 20,000 futures at once, so their
//! tasks (80 bytes each for `add(a, b)`) take 1.6 MB together. When the block ends glibc's `free`
//! gives that memory back to the kernel (it trims the top of its heap beyond 128 KiB), and the next
//! block faults it in again a page at a time: 370–570 page faults a block, about 1.5 ms of a 3.5 ms
//! block on the 2-vCPU AMD EPYC VM of 2026-12-02 (where a fault cost about 3 µs), which made a first
//! block 1.4–2.3× the time of rayon's first scope. Kept here, the next block's tasks land on pages
//! that are already mapped.
//!
//! Bounds: a thread keeps at most [`KEEP_BYTES`] of freed tasks, in at most [`LAYOUTS`] layouts (the
//! least recently freed layout gives way to a new one). Memory beyond that goes back to the
//! allocator at once, and what a thread keeps goes back when the thread exits.

use std::alloc::{self, Layout};
use std::cell::RefCell;
use std::ptr::{self, NonNull};

/// The most freed task memory one thread keeps: 52,000 tasks of `add(a, b)` on Thread (80 bytes
/// each), more than twice the report's blocks of 20,000, and a bounded cost for keeping it.
pub(crate) const KEEP_BYTES: usize = 4 << 20;

/// How many task layouts one thread keeps memory for: a block usually submits one or two kinds
/// of call (each `(function, result)` pair is a layout of its own).
pub(crate) const LAYOUTS: usize = 4;

/// Moves `value` into task memory: memory this thread freed for a task of the same layout if it
/// kept any, else a fresh allocation. Give it back with [`free`].
pub(crate) fn allocate<T>(value: T) -> NonNull<T> {
    let layout = Layout::new::<T>();
    let memory = if layout.size() == 0 {
        NonNull::<T>::dangling().cast::<u8>()
    } else {
        match KEPT.try_with(|kept| kept.borrow_mut().take(layout)) {
            Ok(Some(memory)) => memory,
            _ => {
                // SAFETY: the layout's size is not zero (checked above).
                let fresh = unsafe { alloc::alloc(layout) };
                NonNull::new(fresh).unwrap_or_else(|| alloc::handle_alloc_error(layout))
            }
        }
    };
    let task = memory.cast::<T>();
    // SAFETY: `memory` is valid for writes of `layout`, which is `T`'s, and not in use: either fresh
    // or popped from this thread's kept memory, which nothing else reaches.
    unsafe { task.as_ptr().write(value) };
    task
}

/// Drops the task at `task` and keeps its memory for this thread's next task of the same layout
/// (or gives it back to the allocator, beyond the bounds). A panic in the task's `Drop` still lets
/// the memory go, and unwinds to the caller.
///
/// # Safety
/// `task` must come from [`allocate`] (perhaps through an unsizing coercion, as a `dyn` pointer
/// to the value `allocate` wrote), must not have been freed, and must not be used afterwards.
pub(crate) unsafe fn free<T: ?Sized>(task: NonNull<T>) {
    // SAFETY: the task is alive (the caller's contract), so its size and alignment can be read
    // through the pointer (for a `dyn` pointer, from its vtable).
    let layout = Layout::for_value(unsafe { task.as_ref() });
    /// Lets the memory go once the value is dropped, or if its `Drop` panics.
    struct LetGo(NonNull<u8>, Layout);
    impl Drop for LetGo {
        fn drop(&mut self) {
            let (memory, layout) = (self.0, self.1);
            if layout.size() == 0 {
                return;
            }
            let kept = KEPT.try_with(|kept| kept.borrow_mut().put(memory, layout));
            if kept != Ok(true) {
                // SAFETY: `memory` came from `alloc::alloc(layout)` in `allocate` (the layout read
                // back from the value is the one it was allocated with: `Layout::new::<T>()` of the
                // same concrete type), and the value in it has been dropped.
                unsafe { alloc::dealloc(memory.as_ptr(), layout) };
            }
        }
    }
    let _let_go = LetGo(task.cast::<u8>(), layout);
    // SAFETY: the value is alive and owned by the caller, who will not use it again.
    unsafe { ptr::drop_in_place(task.as_ptr()) };
}

thread_local! {
    static KEPT: RefCell<Kept> = const { RefCell::new(Kept::new()) };
}

/// The first word of a kept block: the next kept block of the same layout.
struct Link {
    next: Option<NonNull<Link>>,
}

/// The kept blocks of one layout, a stack linked through the blocks themselves.
struct FreeList {
    layout: Layout,
    top: Option<NonNull<Link>>,
    /// When this list last got a block, in [`Kept::puts`]: the oldest gives way to a new layout.
    last_put: u64,
}

/// One thread's kept task memory.
struct Kept {
    lists: [Option<FreeList>; LAYOUTS],
    bytes: usize,
    puts: u64,
}

impl Kept {
    const fn new() -> Self {
        Kept {
            lists: [const { None }; LAYOUTS],
            bytes: 0,
            puts: 0,
        }
    }

    fn take(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        let list = self
            .lists
            .iter_mut()
            .flatten()
            .find(|l| l.layout == layout)?;
        let block = list.top?;
        // SAFETY: a kept block is a block of `layout`, at least a `Link` in size and alignment
        // (`put` keeps no other), written by `put` and reached by nothing else.
        list.top = unsafe { block.as_ref().next };
        self.bytes -= layout.size();
        Some(block.cast())
    }

    /// Keeps `memory`, a block of `layout` whose value was dropped; `false` if it must go back to
    /// the allocator instead.
    fn put(&mut self, memory: NonNull<u8>, layout: Layout) -> bool {
        if layout.size() < size_of::<Link>()
            || layout.align() < align_of::<Link>()
            || self.bytes + layout.size() > KEEP_BYTES
        {
            return false;
        }
        self.puts += 1;
        let puts = self.puts;
        let at = match self
            .lists
            .iter()
            .position(|l| matches!(l, Some(l) if l.layout == layout))
        {
            Some(at) => at,
            None => {
                let at = self.oldest_slot();
                if let Some(old) = self.lists[at].take() {
                    self.bytes -= release(old);
                }
                self.lists[at] = Some(FreeList {
                    layout,
                    top: None,
                    last_put: puts,
                });
                at
            }
        };
        let list = self.lists[at]
            .as_mut()
            .expect("the slot was just found or filled");
        let block = memory.cast::<Link>();
        // SAFETY: the block is at least a `Link` in size and alignment (checked above), and the
        // value that was in it has been dropped, so it may be overwritten.
        unsafe { block.as_ptr().write(Link { next: list.top }) };
        list.top = Some(block);
        list.last_put = puts;
        self.bytes += layout.size();
        true
    }

    /// An empty slot, or else the one whose layout was freed longest ago.
    fn oldest_slot(&self) -> usize {
        let mut oldest = 0;
        for (at, list) in self.lists.iter().enumerate() {
            match list {
                None => return at,
                Some(list) => {
                    let best = self.lists[oldest].as_ref().map_or(0, |l| l.last_put);
                    if list.last_put < best {
                        oldest = at;
                    }
                }
            }
        }
        oldest
    }

    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.bytes
    }
}

/// Gives every block of `list` back to the allocator; returns how many bytes that was.
fn release(list: FreeList) -> usize {
    let mut bytes = 0;
    let mut next = list.top;
    while let Some(block) = next {
        // SAFETY: a kept block holds a `Link` written by `put`; it came from `alloc::alloc` with
        // the list's layout and holds no value, so it may be freed.
        unsafe {
            next = block.as_ref().next;
            alloc::dealloc(block.as_ptr().cast(), list.layout);
        }
        bytes += list.layout.size();
    }
    bytes
}

impl Drop for Kept {
    fn drop(&mut self) {
        for list in self.lists.iter_mut().filter_map(Option::take) {
            release(list);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    fn kept_bytes() -> usize {
        KEPT.with(|kept| kept.borrow().bytes())
    }

    #[test]
    fn a_freed_task_s_memory_holds_the_next_task_of_its_layout() {
        std::thread::spawn(|| {
            let first = allocate([1u64; 12]);
            let address = first.as_ptr() as usize;
            // SAFETY: from `allocate`, freed once.
            unsafe { free(first) };
            assert_eq!(kept_bytes(), 96);
            let second = allocate([2u64; 12]);
            assert_eq!(second.as_ptr() as usize, address);
            // SAFETY: `second` is alive and was written by `allocate`.
            assert_eq!(unsafe { second.as_ref() }, &[2u64; 12]);
            assert_eq!(kept_bytes(), 0);
            // SAFETY: from `allocate`, freed once.
            unsafe { free(second) };
        })
        .join()
        .unwrap();
    }

    #[test]
    fn memory_of_one_layout_is_not_handed_to_another() {
        std::thread::spawn(|| {
            let small = allocate([1u64; 4]);
            let address = small.as_ptr() as usize;
            // SAFETY: from `allocate`, freed once.
            unsafe { free(small) };
            let other = allocate([1u64; 5]);
            assert_ne!(other.as_ptr() as usize, address);
            // SAFETY: from `allocate`, freed once.
            unsafe { free(other) };
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_thread_keeps_no_more_than_its_bound() {
        std::thread::spawn(|| {
            let tasks: Vec<_> = (0..KEEP_BYTES / 64 + 100)
                .map(|_| allocate([0u64; 8]))
                .collect();
            for task in tasks {
                // SAFETY: from `allocate`, freed once.
                unsafe { free(task) };
            }
            assert_eq!(kept_bytes(), KEEP_BYTES);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_new_layout_takes_the_place_of_the_one_freed_longest_ago() {
        std::thread::spawn(|| {
            // LAYOUTS + 1 layouts, one block each: the first gives way to the last.
            let a = allocate([0u64; 2]);
            let b = allocate([0u64; 3]);
            let c = allocate([0u64; 4]);
            let d = allocate([0u64; 5]);
            let e = allocate([0u64; 6]);
            // SAFETY: each from `allocate`, freed once.
            unsafe {
                free(a);
                free(b);
                free(c);
                free(d);
            }
            assert_eq!(kept_bytes(), 8 * (2 + 3 + 4 + 5));
            // SAFETY: from `allocate`, freed once.
            unsafe { free(e) };
            assert_eq!(kept_bytes(), 8 * (3 + 4 + 5 + 6));
        })
        .join()
        .unwrap();
    }

    /// Counts its drops; panics in `drop` when told to.
    struct Counted(Arc<AtomicUsize>, bool);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
            assert!(!self.1, "a task's drop panicked");
        }
    }

    #[test]
    fn free_drops_the_value_once_through_a_dyn_pointer_and_keeps_its_memory_when_drop_panics() {
        std::thread::spawn(|| {
            let drops = Arc::new(AtomicUsize::new(0));
            let quiet: NonNull<dyn Send> = allocate((Counted(drops.clone(), false), 0u64));
            // SAFETY: from `allocate` (unsized to `dyn Send`), freed once.
            unsafe { free(quiet) };
            assert_eq!(drops.load(Ordering::SeqCst), 1);
            let loud = allocate((Counted(drops.clone(), true), 0u64));
            let address = loud.as_ptr() as usize;
            let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                // SAFETY: from `allocate`, freed once.
                unsafe { free(loud) }
            }));
            assert!(unwound.is_err());
            assert_eq!(drops.load(Ordering::SeqCst), 2);
            // The memory was kept all the same, and is the next task's.
            let next = allocate((Counted(drops.clone(), false), 1u64));
            assert_eq!(next.as_ptr() as usize, address);
            // SAFETY: from `allocate`, freed once.
            unsafe { free(next) };
        })
        .join()
        .unwrap();
    }
}
