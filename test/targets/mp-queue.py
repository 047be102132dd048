# A multiprocessing program under the start method given (forkserver or spawn): its locks and
# queues are named POSIX semaphores, which the parent maps by a name it unlinked (glibc's
# sem_open: a temporary file linked to its name) and its workers by that name. After the restore
# the queue must still be one queue: every worker's items arrive, none twice, and a lock held by
# the parent still excludes a worker.
import multiprocessing as mp, os, sys, time

def put_forever(q, n):
    i = 0
    while True:
        q.put((n, i)); i += 1; time.sleep(0.02)

def try_lock(lock, out):
    out.put(lock.acquire(timeout=0.2))

if __name__ == '__main__':
    mp.set_start_method(sys.argv[1])
    q, lock, out = mp.Queue(), mp.Lock(), mp.Queue()
    workers = [mp.Process(target=put_forever, args=(q, n), daemon=True) for n in range(2)]
    for w in workers: w.start()
    last = {}
    def drain(k):
        for _ in range(k):
            n, i = q.get(timeout=10)
            if i <= last.get(n, -1): raise SystemExit(f'FAIL: item {n},{i} after {last[n]}')
            last[n] = i
    drain(10)
    lock.acquire()
    print('READY', flush=True)
    while not os.path.exists('go'):
        drain(1)
    drain(40)
    p = mp.Process(target=try_lock, args=(lock, out)); p.start(); held = out.get(timeout=10) is False; p.join()
    lock.release()
    ok = set(last) == {0, 1} and held
    print('PASS' if ok else f'FAIL: {last} lock held: {held}', flush=True)
    time.sleep(1000)
