import Dispatch
import Foundation
#if canImport(Glibc)
import Glibc
#endif

extension Ledger {
    /// Events after `seq` as they are appended, by this process or any other, until cancelled.
    ///
    /// Wakes at once on this process's commits, on writes to the log file by other processes
    /// (inotify), and in any case every `pollInterval`. Over a shared log, the replica copies each
    /// append the server announces (PostgreSQL's LISTEN/NOTIFY), which wakes the stream the same way.
    /// ```swift
    /// for try await event in ledger.follow(after: try ledger.lastSeq) { print(event.seq, event.type) }
    /// ```
    public func follow(after seq: UInt64, pollInterval: Duration = .seconds(1)) -> AsyncThrowingStream<Event, any Error> {
        AsyncThrowingStream { continuation in
            let signals = changeSignals(every: pollInterval)
            // Over a shared log: the replica copies each announced append, which wakes this stream.
            let puller = upstream.map { _ in
                Task {
                    await self.replicate(every: pollInterval) { error in
                        continuation.finish(throwing: error)
                        return false
                    }
                }
            }
            let task = Task {
                defer { puller?.cancel() }
                var cursor = seq
                var wakeups = signals.makeAsyncIterator()
                do {
                    while !Task.isCancelled {
                        let batch = try events(cursor &+ 1...UInt64.max, limit: 1_000)
                        for event in batch {
                            continuation.yield(event)
                            cursor = event.seq
                        }
                        if batch.count == 1_000 { continue }
                        if await wakeups.next() == nil { break }
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}

extension Ledger {
    /// A signal after each possible change of the log: a commit by this process (a replica's copy
    /// included), a write to the log file by another process (inotify), and in any case every
    /// `pollInterval`. Signals coalesce (one is kept while nobody reads); the caller reads what is new.
    /// It copies nothing from a shared log: run ``replicate(every:failed:copied:)`` beside it.
    public func changeSignals(every pollInterval: Duration = .seconds(1)) -> AsyncStream<Void> {
        let (id, signals) = changes.subscribe()
        let watcher = FileWatcher(path: directory.appendingPathComponent("log/data.mdb").path) { [changes] in
            changes.notify()
        }
        let ticker = Task { [changes] in
            while !Task.isCancelled {
                try? await Task.sleep(for: pollInterval)
                changes.notify()
            }
        }
        return AsyncStream(Void.self, bufferingPolicy: .bufferingNewest(1)) { continuation in
            let relay = Task {
                for await _ in signals { continuation.yield() }
                continuation.finish()
            }
            continuation.onTermination = { [changes] _ in
                relay.cancel()
                ticker.cancel()
                watcher?.cancel()
                changes.unsubscribe(id)
            }
        }
    }
}

/// Calls `onChange` when a file is modified (Linux inotify), read on a dispatch source.
final class FileWatcher: @unchecked Sendable {
    // @unchecked Sendable: a dispatch source is thread-safe; `source` is set once in init.
    private let source: any DispatchSourceRead

    init?(path: String, onChange: @escaping @Sendable () -> Void) {
        let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else { return nil }
        guard inotify_add_watch(fd, path, UInt32(IN_MODIFY)) >= 0 else {
            Glibc.close(fd)
            return nil
        }
        source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: .global())
        source.setEventHandler {
            var buffer = [UInt8](repeating: 0, count: 4096)
            while buffer.withUnsafeMutableBytes({ read(fd, $0.baseAddress, $0.count) }) > 0 {}
            onChange()
        }
        source.setCancelHandler { Glibc.close(fd) }
        source.resume()
    }

    func cancel() { source.cancel() }
}
