Process(initializer = setup, initargs = 5) => { if x { return submit(f, a, b, c) } else { map(g, v) } }
