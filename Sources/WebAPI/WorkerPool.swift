import Foundation

/// A fixed set of threads that perform the API's verbs, fed from a bounded queue. The server's
/// event loops never block on the supervisor, the number of threads (and of glibc malloc arenas
/// they keep) does not grow with the load, and a request beyond the queue is refused at once
/// instead of waiting — the caller answers it 503 with Retry-After.
final class WorkerPool: Sendable {
    private let queue: Queue

    init(name: String, threads: Int, queued limit: Int) {
        queue = Queue(limit: limit)
        for n in 0..<threads {
            let thread = Thread { [queue] in queue.work() }
            thread.name = "\(name)-\(n)"
            thread.start()
        }
    }

    /// The threads finish what is queued and end.
    deinit { queue.stop() }

    /// Run `job` on one of the threads and wait for its result; nil when the pool is full.
    func perform<T: Sendable>(_ job: @escaping @Sendable () -> T) async -> T? {
        await withCheckedContinuation { (done: CheckedContinuation<T?, Never>) in
            if !queue.submit({ done.resume(returning: job()) }) { done.resume(returning: nil) }
        }
    }

    /// Stop taking jobs; the threads finish those queued and end.
    func stop() { queue.stop() }

    /// What the threads share (they hold it, not the pool, so the pool can end).
    private final class Queue: @unchecked Sendable {
        private let condition = NSCondition()
        private var jobs: [@Sendable () -> Void] = []
        private var stopping = false
        let limit: Int

        init(limit: Int) { self.limit = limit }

        func submit(_ job: @escaping @Sendable () -> Void) -> Bool {
            condition.lock()
            defer { condition.unlock() }
            guard !stopping, jobs.count < limit else { return false }
            jobs.append(job)
            condition.signal()
            return true
        }

        func work() {
            while true {
                condition.lock()
                while jobs.isEmpty && !stopping { condition.wait() }
                if jobs.isEmpty {
                    condition.unlock()
                    return
                }
                let job = jobs.removeFirst()
                condition.unlock()
                job()
            }
        }

        func stop() {
            condition.lock()
            stopping = true
            condition.broadcast()
            condition.unlock()
        }
    }
}
