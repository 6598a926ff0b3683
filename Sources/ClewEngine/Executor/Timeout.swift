package import ClewCore
import Synchronization

/// An attempt that ran past its time limit.
package struct TimeoutError: ClewError {
    let millis: Int
    package var description: String { "timed out after \(millis) ms" }
    package var category: ErrorCategory { .unavailable }
}

/// Runs `body` with a time limit. Commands stop cooperatively (cancellation kills the process group and
/// is awaited); Swift closures are cancelled and abandoned, so one that ignores cancellation cannot hold
/// up the run (its context is closed, so it cannot record anything more).
package func withTimeout<T: Sendable>(
    _ millis: Int?, stopsCooperatively: Bool, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    guard let millis else { return try await body() }
    let work = Task { try await body() }
    let once = Mutex(false)
    let result: Result<T, any Error> = await withTaskCancellationHandler {
        await withCheckedContinuation { (continuation: CheckedContinuation<Result<T, any Error>, Never>) in
            let finish: @Sendable (Result<T, any Error>) -> Void = { r in
                if once.withLock({ done in defer { done = true }; return !done }) { continuation.resume(returning: r) }
            }
            let timer = Task {
                try? await Task.sleep(for: .milliseconds(millis))
                if !Task.isCancelled { finish(.failure(TimeoutError(millis: millis))) }
            }
            Task {
                let r = await work.result
                timer.cancel()
                finish(r)
            }
        }
    } onCancel: {
        work.cancel()
    }
    if case .failure(let e) = result, e is TimeoutError {
        work.cancel()
        if stopsCooperatively { _ = await work.result }
    }
    return try result.get()
}
