Process => { pool!(Thread => { submit(f) }); fn inner() { submit(f) } let c = |x| submit(f, x); other::submit(f); x.submit(f); submit::<u8>(f) }
