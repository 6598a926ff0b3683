import Dispatch

/// Runs blocking work (LMDB reads and catch-ups, whole-ledger verification) on a thread of its own
/// rather than on one of Swift concurrency's cooperative threads.
///
/// The cooperative pool has one thread per core (two here). A request handler or test that blocks one
/// of them for seconds delays every timer, timeout and continuation in the process: that is how a
/// 200 ms task timeout once fired 25 s late. Work handed to a `BlockingExecutor` runs on a serial
/// dispatch queue, which libdispatch backs with its own (overcommitting) thread, so the pool stays free.
///
/// ```swift
/// let io = BlockingExecutor(label: "clew.views")
/// let runs = try await io.run { try views.runs(query) }
/// ```
public final class BlockingExecutor: TaskExecutor {
    private let queue: DispatchQueue

    /// - Parameter label: names the queue (and so the thread) in debuggers and profiles.
    public init(label: String) { queue = DispatchQueue(label: label, qos: .userInitiated) }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.async { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }

    /// Runs `body` on this executor's queue and returns its result to the caller's task.
    ///
    /// Calls are served one at a time, in order, so `body` runs exclusively with respect to other
    /// `run` calls on the same executor.
    /// - Throws: whatever `body` throws.
    public func run<T>(_ body: () throws -> T) async throws -> T {
        try await withTaskExecutorPreference(self) { try body() }
    }
}
