Thread(max_workers = 0, max_workers = -1, timeout = 3, workers = 2, initargs = ()) => { submit(); map(f); submit(f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13) }
