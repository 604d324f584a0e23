//! Task memory: every task (its closure or call, and its completion) is one allocation, made by
//! [`allocate`] and given back by [`free`], which keeps it for the thread's next task of the same
//! layout rather than return it to the global allocator.
//!
//! Why: the caller of a block of 20,000 tiny tasks holds their 20,000 futures at once, so their
//! tasks (80 bytes each for `add(a, b)` then, 72 now) took 1.6 MB together. When the block ends
//! glibc's `free` gives that memory back to the kernel (it trims the top of its heap beyond 128
//! KiB), and the next block faults it in again a page at a time: 370–570 page faults a block, about
//! 1.5 ms of a 3.5 ms block on the 2-vCPU AMD EPYC VM of 2026-12-02 (where a fault cost about 3 µs),
//! which made a first block 1.4–2.3× the time of rayon's first scope. Kept here, the next block's
//! tasks land on pages that are already mapped.
//!
//! Bounds: a thread keeps at most [`KEEP_BYTES`] of freed tasks, in at most [`LAYOUTS`] layouts (the
//! layouts freed longest ago give way to a new one), and only a thread that makes tasks keeps any
//! (a pool's worker that lets go of a task last gives its memory back). Memory beyond that goes
//! back to the allocator at once, and what a thread keeps goes back when the thread exits.
//! Process and Mpi calls are tasks too, and keep theirs the same way.

use std::alloc::{self, Layout};
use std::cell::RefCell;
use std::ptr::{self, NonNull};

/// The most freed task memory one thread keeps, counted in the tasks' own sizes: 58,000 tasks of
/// `add(a, b)` on Thread (72 bytes each; 80 with glibc's header, so about 4.4 MiB of heap), more
/// than twice the report's blocks of 20,000, and a bounded cost for keeping it.
pub(crate) const KEEP_BYTES: usize = 4 << 20;

/// How many task layouts (size and alignment) one thread keeps memory for: a block usually submits
/// one or two kinds of call, and calls whose tasks have the same size and alignment share one.
pub(crate) const LAYOUTS: usize = 4;

/// Moves `value` into task memory: memory this thread freed for a task of the same layout if it
/// kept any, else a fresh allocation. Give it back with [`free`].
pub(crate) fn allocate<T>(value: T) -> NonNull<T> {
    // A task holds its completion, so it is never zero-sized (which `alloc` does not allow).
    const { assert!(size_of::<T>() != 0) };
    let layout = Layout::new::<T>();
    let memory = match KEPT.try_with(|kept| kept.borrow_mut().take(layout)) {
        Ok(Some(memory)) => memory,
        _ => {
            // SAFETY: the layout's size is not zero (asserted above, at compile time).
            let fresh = unsafe { alloc::alloc(layout) };
            NonNull::new(fresh).unwrap_or_else(|| alloc::handle_alloc_error(layout))
        }
    };
    let task = memory.cast::<T>();
    // SAFETY: `memory` is a block of exactly `T`'s layout (size and alignment), so it is valid and
    // aligned for a write of `T`, and not in use: either fresh, or popped from this thread's kept
    // memory of that layout (kept lists are keyed by the whole layout), which nothing else reaches.
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
            let kept = KEPT.try_with(|kept| kept.borrow_mut().put(memory, layout));
            if kept != Ok(true) {
                // SAFETY: `memory` came from `alloc::alloc` with a layout equal to `layout` (in
                // `allocate`, maybe for another type of that layout, maybe on another thread: the
                // allocator allows both), the layout read back from the value is `Layout::new` of
                // its concrete type, and the value in it has been dropped.
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

/// The kept blocks of one layout, a stack linked through the blocks themselves. (An array of
/// pointers was tried, so that a take need not read the block for the next one: the first store
/// into the task needs that cache line anyway, and the array was no faster: 1.49–1.60 ms a block of
/// 20,000 tiny tasks against 1.45–1.66, `perf annotate` putting the time on that store both ways.)
struct FreeList {
    layout: Layout,
    top: Option<NonNull<Link>>,
    /// The blocks' sizes added up.
    bytes: usize,
    /// When this list last got a block, in [`Kept::puts`]: the oldest gives way to a new layout.
    last_put: u64,
}

impl FreeList {
    fn new(layout: Layout) -> Self {
        FreeList {
            layout,
            top: None,
            bytes: 0,
            last_put: 0,
        }
    }

    /// Keeps `memory`, a block of this list's layout that holds no value and is at least a `Link`
    /// in size and alignment (`Kept::put` keeps no other).
    fn push(&mut self, memory: NonNull<u8>) {
        let block = memory.cast::<Link>();
        // SAFETY: the block is at least a `Link` in size and alignment (the caller's check), and
        // the value that was in it has been dropped, so it may be overwritten.
        unsafe { block.as_ptr().write(Link { next: self.top }) };
        self.top = Some(block);
        self.bytes += self.layout.size();
    }

    fn pop(&mut self) -> Option<NonNull<u8>> {
        let block = self.top?;
        // SAFETY: a block on this list was put there by `push`, which wrote a `Link` at its start;
        // nothing else reaches it.
        self.top = unsafe { block.as_ref().next };
        self.bytes -= self.layout.size();
        Some(block.cast())
    }

    /// Gives one block back to the allocator; `false` if the list is empty.
    fn release_one(&mut self) -> bool {
        let Some(block) = self.pop() else {
            return false;
        };
        // SAFETY: a kept block came from `alloc::alloc` with a layout equal to the list's, and
        // holds no value, so it may be freed.
        unsafe { alloc::dealloc(block.as_ptr(), self.layout) };
        true
    }
}

/// One thread's kept task memory.
struct Kept {
    lists: [Option<FreeList>; LAYOUTS],
    puts: u64,
    /// Whether this thread has made a task: only such a thread keeps memory, since only it will
    /// take it again (a pool's worker that lets go of a task whose future was dropped first makes
    /// none, and what it kept would wait, unused, for its exit).
    allocates: bool,
}

impl Kept {
    const fn new() -> Self {
        Kept {
            lists: [const { None }; LAYOUTS],
            puts: 0,
            allocates: false,
        }
    }

    fn take(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        self.allocates = true;
        let list = self
            .lists
            .iter_mut()
            .flatten()
            .find(|l| l.layout == layout)?;
        list.pop()
    }

    /// The bytes kept, in all layouts.
    fn bytes(&self) -> usize {
        self.lists.iter().flatten().map(|l| l.bytes).sum()
    }

    /// Keeps `memory`, a block of `layout` whose value was dropped; `false` if it must go back to
    /// the allocator instead. To stay within [`KEEP_BYTES`], the layouts freed longest ago give
    /// up blocks, one at a time, to this one (a new layout takes the slot of the one freed longest
    /// ago); a layout that alone would pass the bound keeps no more, and takes nothing from others.
    fn put(&mut self, memory: NonNull<u8>, layout: Layout) -> bool {
        if !self.allocates
            || layout.size() < size_of::<Link>()
            || layout.align() < align_of::<Link>()
            || layout.size() > KEEP_BYTES
        {
            return false;
        }
        let at = match self
            .lists
            .iter()
            .position(|l| matches!(l, Some(l) if l.layout == layout))
        {
            Some(at) => at,
            None => {
                let at = self.oldest(None);
                self.release(at);
                self.lists[at] = Some(FreeList::new(layout));
                at
            }
        };
        let own = self.lists[at].as_ref().map_or(0, |l| l.bytes);
        if own + layout.size() > KEEP_BYTES {
            return false;
        }
        // The other lists hold at least what is missing (this one leaves room), so this ends
        // having released only blocks of other layouts.
        let mut bytes = self.bytes();
        while bytes + layout.size() > KEEP_BYTES {
            let other = self.oldest(Some(at));
            let Some(list) = self.lists[other].as_mut().filter(|_| other != at) else {
                return false;
            };
            let size = list.layout.size();
            if !list.release_one() {
                return false;
            }
            bytes -= size;
        }
        self.puts += 1;
        let list = self.lists[at]
            .as_mut()
            .expect("the slot was just found or filled");
        list.push(memory);
        list.last_put = self.puts;
        true
    }

    /// An empty slot if there is one, else the slot whose layout was freed longest ago; with
    /// `besides`, only a slot other than that one that keeps some memory (or `besides` itself if
    /// there is none).
    fn oldest(&self, besides: Option<usize>) -> usize {
        if besides.is_none() {
            if let Some(empty) = self.lists.iter().position(Option::is_none) {
                return empty;
            }
        }
        let candidates = self.lists.iter().enumerate().filter_map(|(at, list)| {
            let list = list.as_ref()?;
            let candidate = match besides {
                None => true,
                Some(besides) => at != besides && list.top.is_some(),
            };
            candidate.then_some((at, list.last_put))
        });
        candidates
            .min_by_key(|&(_, last_put)| last_put)
            .map_or(besides.unwrap_or(0), |(at, _)| at)
    }

    /// Gives the memory kept in slot `at` back to the allocator and empties the slot.
    fn release(&mut self, at: usize) {
        if let Some(mut list) = self.lists[at].take() {
            while list.release_one() {}
        }
    }
}

/// How many bytes of freed task memory the calling thread keeps.
#[cfg(test)]
pub(crate) fn kept_bytes() -> usize {
    KEPT.with(|kept| kept.borrow().bytes())
}

impl Drop for Kept {
    fn drop(&mut self) {
        for at in 0..LAYOUTS {
            self.release(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Runs `test` on a new thread, whose kept memory starts empty and is the test's alone.
    fn on_a_thread_of_its_own(test: impl FnOnce() + Send + 'static) {
        std::thread::spawn(test).join().unwrap();
    }

    #[test]
    fn a_freed_task_s_memory_holds_the_next_task_of_its_layout() {
        on_a_thread_of_its_own(|| {
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
        });
    }

    #[test]
    fn memory_of_one_layout_is_not_handed_to_another() {
        on_a_thread_of_its_own(|| {
            let small = allocate([1u64; 4]);
            let address = small.as_ptr() as usize;
            // SAFETY: from `allocate`, freed once.
            unsafe { free(small) };
            let other = allocate([1u64; 5]);
            assert_ne!(other.as_ptr() as usize, address);
            // SAFETY: from `allocate`, freed once.
            unsafe { free(other) };
        });
    }

    #[test]
    fn a_thread_keeps_no_more_than_its_bound() {
        on_a_thread_of_its_own(|| {
            let tasks: Vec<_> = (0..KEEP_BYTES / 64 + 100)
                .map(|_| allocate([0u64; 8]))
                .collect();
            for task in tasks {
                // SAFETY: from `allocate`, freed once.
                unsafe { free(task) };
            }
            assert_eq!(kept_bytes(), KEEP_BYTES);
        });
    }

    #[test]
    fn a_new_layout_takes_the_place_of_the_one_freed_longest_ago() {
        on_a_thread_of_its_own(|| {
            // LAYOUTS + 1 layouts: 16, 24, 40, 56 and 88 bytes.
            let a = allocate([0u64; 2]);
            let a2 = allocate([0u64; 2]);
            let b = allocate([0u64; 3]);
            let c = allocate([0u64; 5]);
            let d = allocate([0u64; 7]);
            let e = allocate([0u64; 11]);
            // SAFETY: each from `allocate`, freed once.
            unsafe {
                free(a);
                free(b);
                free(c);
                free(d);
                free(a2); // `a`'s layout is now the one freed last, `b`'s the one freed first
            }
            assert_eq!(kept_bytes(), 32 + 24 + 40 + 56);
            // SAFETY: from `allocate`, freed once.
            unsafe { free(e) };
            assert_eq!(kept_bytes(), 32 + 40 + 56 + 88, "b's layout gives way");
        });
    }

    #[test]
    fn a_new_layout_is_kept_when_another_fills_the_bound() {
        on_a_thread_of_its_own(|| {
            let many: Vec<_> = (0..KEEP_BYTES / 64).map(|_| allocate([0u64; 8])).collect();
            let other = allocate([0u64; 4]);
            for task in many {
                // SAFETY: from `allocate`, freed once.
                unsafe { free(task) };
            }
            assert_eq!(kept_bytes(), KEEP_BYTES);
            // SAFETY: from `allocate`, freed once.
            unsafe { free(other) };
            assert_eq!(
                kept_bytes(),
                KEEP_BYTES - 64 + 32,
                "the full layout, freed longest ago, gives up one block"
            );
        });
    }

    #[test]
    fn a_layout_that_alone_would_pass_the_bound_takes_nothing_from_the_others() {
        on_a_thread_of_its_own(|| {
            // 96-byte blocks up to the bound (43,690 of them: 4 MiB less 64 bytes), then one of 32.
            let full = KEEP_BYTES / 96;
            let many: Vec<_> = (0..=full).map(|_| allocate([0u64; 12])).collect();
            let small = allocate([0u64; 4]);
            let mut many = many.into_iter();
            for task in many.by_ref().take(full) {
                // SAFETY: from `allocate`, freed once.
                unsafe { free(task) };
            }
            // SAFETY: from `allocate`, freed once.
            unsafe { free(small) };
            assert_eq!(kept_bytes(), full * 96 + 32);
            // SAFETY: from `allocate`, freed once.
            unsafe { free(many.next().unwrap()) };
            assert_eq!(
                kept_bytes(),
                full * 96 + 32,
                "neither kept nor made room for"
            );
        });
    }

    /// Same size as `[u64; 4]`, a larger alignment.
    #[repr(align(32))]
    struct Aligned([u8; 32]);

    #[test]
    fn memory_of_one_alignment_is_not_handed_to_another_of_the_same_size() {
        on_a_thread_of_its_own(|| {
            let plain = allocate([0u64; 4]);
            let address = plain.as_ptr() as usize;
            // SAFETY: from `allocate`, freed once.
            unsafe { free(plain) };
            assert_eq!(kept_bytes(), 32);
            let aligned = allocate(Aligned([1; 32]));
            assert_eq!(aligned.as_ptr() as usize % 32, 0);
            // SAFETY: `aligned` is alive and was written by `allocate`.
            assert_eq!(unsafe { aligned.as_ref() }.0, [1; 32]);
            assert_eq!(kept_bytes(), 32, "the 8-aligned block stays kept");
            // SAFETY: from `allocate`, freed once.
            unsafe { free(aligned) };
            let again = allocate([0u64; 4]);
            assert_eq!(again.as_ptr() as usize, address);
            // SAFETY: from `allocate`, freed once.
            unsafe { free(again) };
        });
    }

    #[test]
    fn a_thread_that_makes_no_tasks_keeps_none_of_those_it_frees() {
        let task = allocate([0u64; 4]);
        let address = task.as_ptr() as usize;
        on_a_thread_of_its_own(move || {
            let task = NonNull::new(address as *mut [u64; 4]).unwrap();
            // SAFETY: from `allocate` on the test's thread, handed over whole, freed once.
            unsafe { free(task) };
            assert_eq!(kept_bytes(), 0);
        });
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
        on_a_thread_of_its_own(|| {
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
            assert_eq!(
                kept_bytes(),
                size_of::<(Counted, u64)>(),
                "kept, not deallocated"
            );
            // The memory was kept all the same, and is the next task's.
            let next = allocate((Counted(drops.clone(), false), 1u64));
            assert_eq!(next.as_ptr() as usize, address);
            // SAFETY: from `allocate`, freed once.
            unsafe { free(next) };
        });
    }
}
